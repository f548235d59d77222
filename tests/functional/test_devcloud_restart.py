"""devcloud keeps every volume, attachment and loop binding across restarts and crashes."""

import os
import signal
import subprocess

import pytest

from storage_core.devcloud import DevCloud, LatencyProfile
from storage_core.devcloud.testing import (
    connect,
    loop_devices_under,
    release_loop_devices_under,
    start_subprocess,
)

CONNECTOR = {"host": "restart-host", "initiator": None}


def losetup_j(path):
    out = subprocess.run(["losetup", "-j", path], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line]


@pytest.fixture
def state(tmp_path):
    yield tmp_path / "state"
    leaked = release_loop_devices_under(tmp_path)
    assert not leaked, f"the test leaked loop devices {leaked}"


def _attached_volume(bs, name):
    volume = bs.wait_for_status(bs.create_volume(name=name, size=1), "available",
                                interval=0.05, wait=10)
    attachment = bs.create_attachment(volume.id, connector=CONNECTOR)
    bs.complete_attachment(attachment.id)
    return volume, attachment.connection_info["device_path"], attachment.id


def test_stop_start_keeps_volume_attachment_loop_and_token(state):
    dc = DevCloud(state).start()
    try:
        conn = connect(dc)
        bs = conn.block_storage
        volume, device, attachment_id = _attached_volume(bs, "durable")
        spare = bs.wait_for_status(bs.create_volume(name="spare", size=2,
                                                    metadata={"k": "v"}),
                                   "available", interval=0.05, wait=10)
    finally:
        dc.stop()

    dc = DevCloud(state, port=dc.port).start()
    try:
        # The old connection (same URL, same token) keeps working.
        again = bs.get_volume(volume.id)
        assert again.status == "in-use"
        assert again.attachments[0]["attachment_id"] == attachment_id
        attachment = bs.get_attachment(attachment_id)
        assert attachment.status == "attached"
        assert attachment.connection_info["device_path"] == device
        assert losetup_j(dc._backend.path(volume.id)) == [device]
        spare = bs.get_volume(spare.id)
        assert (spare.status, spare.size, spare.metadata) == ("available", 2, {"k": "v"})

        bs.delete_attachment(attachment_id)
        assert losetup_j(dc._backend.path(volume.id)) == []
        assert bs.get_volume(volume.id).status == "available"
    finally:
        dc.stop()


def test_start_rebinds_a_loop_device_the_kernel_lost(state):
    dc = DevCloud(state).start()
    try:
        bs = connect(dc).block_storage
        volume, device, attachment_id = _attached_volume(bs, "rebind")
        image = dc._backend.path(volume.id)
    finally:
        dc.stop()
    subprocess.run(["losetup", "-d", device], check=True)
    assert losetup_j(image) == []

    dc = DevCloud(state).start()
    try:
        bs = connect(dc).block_storage
        (now,) = losetup_j(image)
        attachment = bs.get_attachment(attachment_id)
        assert attachment.connection_info["device_path"] == now
        assert bs.get_volume(volume.id).status == "in-use"
        bs.delete_attachment(attachment_id)
        assert losetup_j(image) == []
    finally:
        dc.stop()


def test_start_finishes_interrupted_transitions(state):
    slow = LatencyProfile(create=60, delete=60)
    dc = DevCloud(state, latency=slow).start()
    try:
        bs = connect(dc).block_storage
        creating = bs.create_volume(name="creating", size=1)
        assert creating.status == "creating"
    finally:
        dc.stop()
    # Make one "deleting" volume: start fast, create, then delete slowly.
    dc = DevCloud(state).start()
    try:
        bs = connect(dc).block_storage
        assert bs.get_volume(creating.id).status == "available"
        doomed = bs.wait_for_status(bs.create_volume(name="doomed", size=1), "available",
                                    interval=0.05, wait=10)
        dc.latency = slow
        bs.delete_volume(doomed)
        assert bs.get_volume(doomed.id).status == "deleting"
        image = dc._backend.path(doomed.id)
        assert os.path.exists(image)
    finally:
        dc.stop()
    dc = DevCloud(state).start()
    try:
        bs = connect(dc).block_storage
        assert [v.name for v in bs.volumes()] == ["creating"]
        assert not os.path.exists(image)
    finally:
        dc.stop()


def test_second_devcloud_on_one_state_dir_is_refused(state):
    with DevCloud(state):
        with pytest.raises(RuntimeError, match="in use"):
            DevCloud(state).start()


def test_kill_9_then_restart_recovers_everything(tmp_path, state):
    ready = tmp_path / "ready.json"
    process, info = start_subprocess(state, ready, "--latency-profile", "seed")
    port = info["url"].rsplit(":", 1)[1]
    try:
        assert info["pid"] == process.pid
        bs = connect(info["cloud"]).block_storage
        volume, device, attachment_id = _attached_volume(bs, "crash")
        in_flight = bs.create_volume(name="in-flight", size=1)
        assert in_flight.status == "creating"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    image = os.path.join(state, "volumes", f"{volume.id}.img")
    assert losetup_j(image) == [device]  # the kernel keeps it across our crash

    process, info = start_subprocess(state, ready, "--port", port)
    try:
        bs = connect(info["cloud"]).block_storage
        assert bs.get_volume(in_flight.id).status == "available"
        again = bs.get_volume(volume.id)
        assert again.status == "in-use"
        attachment = bs.get_attachment(attachment_id)
        assert attachment.status == "attached"
        assert attachment.connection_info["device_path"] == device
        assert losetup_j(image) == [device]

        bs.delete_attachment(attachment_id)
        assert losetup_j(image) == []
        assert loop_devices_under(state) == {}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert not ready.exists()
