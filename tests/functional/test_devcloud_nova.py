"""devcloud's Nova, hypervisor and guest udev, driven by the real openstacksdk compute proxy."""

import json
import os
import shutil
import subprocess
import threading
import time

import requests
from openstack.compute.v2.server import Server

from storage_core.devcloud import DevCloud, LatencyProfile
from storage_core.devcloud.testing import (
    connect,
    loop_devices_under,
    release_loop_devices_under,
)
from tests.functional.devcloud_fixtures import cloud, conn  # noqa: F401 (fixtures)
from tests.functional.harness import wait_until





def new_volume(conn, name, **attrs):
    bs = conn.block_storage
    return bs.wait_for_status(bs.create_volume(name=name, size=1, **attrs), "available",
                              interval=0.05, wait=10)


def in_use(conn, volume_id):
    bs = conn.block_storage
    return bs.wait_for_status(bs.get_volume(volume_id), "in-use", interval=0.05, wait=10)


def available(conn, volume_id):
    bs = conn.block_storage
    return bs.wait_for_status(bs.get_volume(volume_id), "available", interval=0.05, wait=10)


def losetup_j(path):
    out = subprocess.run(["losetup", "-j", path], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line]


def by_id(cloud, volume_id):
    return os.path.join(cloud.disk_root, "by-id", f"virtio-{volume_id[:20]}")


def by_path_links(cloud):
    """{link name: target} under by-path."""
    directory = os.path.join(cloud.disk_root, "by-path")
    return {name: os.readlink(os.path.join(directory, name)) for name in os.listdir(directory)}


def meta_data(cloud, headers=None):
    resp = requests.get(f"{cloud.metadata_url}/openstack/latest/meta_data.json",
                        headers=headers or {}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def raw(conn, method, path, microversion=None, **kwargs):
    resp = conn.compute.request(path, method, microversion=microversion, raise_exc=False,
                                **kwargs)
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, resp.text


def test_attach_and_detach_through_nova(cloud, conn):
    server = cloud.local_server()
    volume = new_volume(conn, "nova-vol")
    image = cloud._backend.path(volume.id)

    attachment = conn.compute.create_volume_attachment(server["id"], volume.id, tag="data")
    # Nova's create answer (at 2.89, what openstacksdk asks for): id and volumeId
    # are the volume's, device is Nova's guess; no attachment_id yet.
    assert (attachment.id, attachment.volume_id) == (volume.id, volume.id)
    assert attachment.device == "/dev/vdb"
    assert attachment.tag == "data" and attachment.delete_on_termination is False
    assert attachment.attachment_id is None

    volume = in_use(conn, volume.id)
    [entry] = volume.attachments
    assert entry["server_id"] == server["id"]
    assert entry["device"] == "/dev/vdb"
    [device] = losetup_j(image)
    assert device.startswith("/dev/loop")

    # The guest's udev: by-id by serial, by-path by PCI address, both at the loop device.
    assert os.readlink(by_id(cloud, volume.id)) == device
    md = meta_data(cloud)
    [disk] = md["devices"]
    assert disk == {"type": "disk", "bus": "pci", "serial": volume.id,
                    "address": disk["address"], "tags": ["data"]}
    assert by_path_links(cloud) == {f"virtio-pci-{disk['address']}": device,
                                    f"pci-{disk['address']}": device}
    assert md["uuid"] == server["id"] and md["name"] == "devcloud-host"
    assert md["hostname"] == "devcloud-host" and md["availability_zone"] == "nova"
    assert md["project_id"] == conn.current_project_id and md["launch_index"] == 0

    # Listed with Cinder's attachment id and Nova's BDM uuid (2.89).
    [listed] = conn.compute.volume_attachments(server["id"])
    cinder_attachment = conn.block_storage.get_attachment(entry["attachment_id"])
    assert listed.attachment_id == cinder_attachment.id
    assert listed.bdm_id and listed.volume_id == volume.id and listed.device == "/dev/vdb"
    assert cinder_attachment.status == "attached"
    assert cinder_attachment.instance == server["id"]
    one = conn.compute.get_volume_attachment(server["id"], volume.id)
    assert one.attachment_id == cinder_attachment.id
    assert conn.compute.get_server(server["id"]).attached_volumes[0]["id"] == volume.id

    conn.compute.delete_volume_attachment(Server(id=server["id"]), volume.id)
    volume = available(conn, volume.id)
    assert volume.attachments == []
    assert losetup_j(image) == []
    assert not os.path.lexists(by_id(cloud, volume.id))
    assert by_path_links(cloud) == {}
    assert meta_data(cloud)["devices"] == []
    assert list(conn.compute.volume_attachments(server["id"])) == []
    assert list(conn.block_storage.attachments(volume_id=volume.id)) == []


def test_the_post_answers_before_the_hypervisor_is_done(tmp_path):
    slow = LatencyProfile(initialize_connection=0.4, attach=0.4, detach=0.4)
    dc = DevCloud(tmp_path / "state", latency=slow).start()
    try:
        conn = connect(dc)
        server_id = dc.local_server()["id"]
        volume = new_volume(conn, "slow")
        started = time.monotonic()
        conn.compute.create_volume_attachment(server_id, volume.id)
        assert time.monotonic() - started < 0.4
        assert conn.block_storage.get_volume(volume.id).status in ("reserved", "attaching")
        # Nova lists the attachment at once, before Cinder calls it attached.
        assert [a.volume_id for a in conn.compute.volume_attachments(server_id)] == [volume.id]
        assert not os.path.lexists(by_id(dc, volume.id))
        # Nova will not detach what Cinder does not call attached yet.
        path = f"/servers/{server_id}/os-volume_attachments/{volume.id}"
        assert raw(conn, "DELETE", path) == (400, {"badRequest": {"code": 400, "message": (
            "Invalid volume: Volume must be attached in order to detach.")}})
        in_use(conn, volume.id)
        assert time.monotonic() - started >= 0.8
        assert os.path.islink(by_id(dc, volume.id))

        started = time.monotonic()
        conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
        assert time.monotonic() - started < 0.4
        assert conn.block_storage.get_volume(volume.id).status == "detaching"
        status, body = raw(conn, "DELETE", path)
        assert status == 400 and "Unable to detach volume" in body["badRequest"]["message"]
        available(conn, volume.id)
        assert time.monotonic() - started >= 0.4
    finally:
        dc.stop()
        leaked = release_loop_devices_under(tmp_path)
    assert not leaked


def test_two_same_size_volumes_get_their_own_devices_and_links(cloud, conn):
    server_id = cloud.local_server()["id"]
    volumes = [new_volume(conn, f"twin-{i}") for i in range(2)]
    devices = [conn.compute.create_volume_attachment(server_id, v.id).device for v in volumes]
    assert devices == ["/dev/vdb", "/dev/vdc"]
    loops = []
    for volume in volumes:
        in_use(conn, volume.id)
        [loop] = losetup_j(cloud._backend.path(volume.id))
        assert os.readlink(by_id(cloud, volume.id)) == loop
        loops.append(loop)
    assert len(set(loops)) == 2
    paths = by_path_links(cloud)
    assert len(paths) == 4 and set(paths.values()) == set(loops)
    for volume in volumes:
        conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
    for volume in volumes:
        available(conn, volume.id)
    assert loop_devices_under(cloud.state_dir) == {}
    assert by_path_links(cloud) == {}


def test_lying_nova_says_vdb_for_every_disk(cloud, conn):
    cloud.hypervisor_options = cloud.hypervisor_options.updated({"lie_about_device": True})
    server_id = cloud.local_server()["id"]
    volumes = [new_volume(conn, f"lie-{i}") for i in range(2)]
    answers = [conn.compute.create_volume_attachment(server_id, v.id) for v in volumes]
    assert [a.device for a in answers] == ["/dev/vdb", "/dev/vdb"]
    for volume in volumes:
        in_use(conn, volume.id)
    assert [a.device for a in conn.compute.volume_attachments(server_id)] == ["/dev/vdb"] * 2
    # The guest is not fooled: each disk has its own links and loop device.
    targets = {os.readlink(by_id(cloud, v.id)) for v in volumes}
    assert len(targets) == 2
    for volume in volumes:
        conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
        available(conn, volume.id)


def test_link_delay_holds_the_links_back(cloud, conn):
    cloud.hypervisor_options = cloud.hypervisor_options.updated({"link_delay": 1.0})
    server_id = cloud.local_server()["id"]
    volume = new_volume(conn, "late")
    started = time.monotonic()
    conn.compute.create_volume_attachment(server_id, volume.id)
    in_use(conn, volume.id)
    assert not os.path.lexists(by_id(cloud, volume.id))  # in-use, but udev is slow
    wait_until(lambda: os.path.islink(by_id(cloud, volume.id)), what="the by-id link")
    assert time.monotonic() - started >= 1.0
    conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
    available(conn, volume.id)
    assert not os.path.lexists(by_id(cloud, volume.id))


def test_without_by_id_links_only_by_path_ones_appear(cloud, conn):
    cloud.hypervisor_options = cloud.hypervisor_options.updated({"create_by_id_links": False})
    server_id = cloud.local_server()["id"]
    volume = new_volume(conn, "bypath")
    conn.compute.create_volume_attachment(server_id, volume.id, tag="bypath")
    in_use(conn, volume.id)
    assert os.listdir(os.path.join(cloud.disk_root, "by-id")) == []
    [loop] = losetup_j(cloud._backend.path(volume.id))
    [disk] = meta_data(cloud)["devices"]
    assert by_path_links(cloud)[f"virtio-pci-{disk['address']}"] == loop
    # Turning by-id links back on makes udev's view whole again.
    cloud.hypervisor_options = cloud.hypervisor_options.updated({"create_by_id_links": True})
    assert os.readlink(by_id(cloud, volume.id)) == loop
    conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
    available(conn, volume.id)


def test_metadata_lists_only_tagged_disks_and_the_config_drive_follows(cloud, conn):
    server = cloud.local_server()
    drive = os.path.join(cloud.config_drive_dir, "openstack", "latest", "meta_data.json")
    with open(drive, encoding="utf-8") as f:
        assert json.load(f) == meta_data(cloud)
    tagged, untagged = new_volume(conn, "tagged"), new_volume(conn, "untagged")
    conn.compute.create_volume_attachment(server["id"], tagged.id, tag="db")
    conn.compute.create_volume_attachment(server["id"], untagged.id)
    in_use(conn, tagged.id)
    in_use(conn, untagged.id)
    md = meta_data(cloud)
    assert [(d["serial"], d["tags"]) for d in md["devices"]] == [(tagged.id, ["db"])]
    with open(drive, encoding="utf-8") as f:
        assert json.load(f) == md
    assert os.path.islink(by_id(cloud, untagged.id))  # udev does not care about tags

    for volume in (tagged, untagged):
        conn.compute.delete_volume_attachment(Server(id=server["id"]), volume.id)
        available(conn, volume.id)
    with open(drive, encoding="utf-8") as f:
        assert json.load(f)["devices"] == []

    listing = requests.get(f"{cloud.metadata_url}/openstack", timeout=10)
    assert listing.status_code == 200 and listing.text.splitlines()[-1] == "latest"
    files = requests.get(f"{cloud.metadata_url}/openstack/latest/", timeout=10).text
    assert "meta_data.json" in files.splitlines()
    assert requests.get(f"{cloud.metadata_url}/openstack/latest/nope",
                        timeout=10).status_code == 404


def test_other_servers_are_other_guests(cloud, conn):
    other = cloud.create_server("other-host")
    volume = new_volume(conn, "elsewhere")
    conn.compute.create_volume_attachment(other["id"], volume.id, tag="x")
    volume = in_use(conn, volume.id)
    assert [a["server_id"] for a in volume.attachments] == [other["id"]]
    assert losetup_j(cloud._backend.path(volume.id))  # exported to that host
    assert not os.path.lexists(by_id(cloud, volume.id))  # but not our disk
    assert meta_data(cloud)["devices"] == []
    theirs = meta_data(cloud, headers={"X-Instance-ID": other["id"]})
    assert theirs["uuid"] == other["id"] and [d["serial"] for d in theirs["devices"]] == \
        [volume.id]
    assert {s.name for s in conn.compute.servers()} == {"devcloud-host", "other-host"}
    assert [s.id for s in conn.compute.servers(name="^other")] == [other["id"]]
    conn.compute.delete_volume_attachment(Server(id=other["id"]), volume.id)
    available(conn, volume.id)


def test_a_volume_attached_elsewhere_is_refused(cloud, conn):
    mine, other = cloud.local_server()["id"], cloud.create_server("other")["id"]
    volume = new_volume(conn, "single")
    conn.compute.create_volume_attachment(other, volume.id)
    in_use(conn, volume.id)
    status, body = raw(conn, "POST", f"/servers/{mine}/os-volume_attachments",
                       json={"volumeAttachment": {"volumeId": volume.id}})
    assert (status, body) == (400, {"badRequest": {"code": 400, "message": (
        f"Invalid volume: volume {volume.id} is already attached to instances: {other}")}})
    # The same server twice: Nova refuses it with a 400 too (not a 409).
    status, body = raw(conn, "POST", f"/servers/{other}/os-volume_attachments",
                       json={"volumeAttachment": {"volumeId": volume.id}})
    assert status == 400 and "is already attached to instances" in \
        body["badRequest"]["message"]
    conn.compute.delete_volume_attachment(Server(id=other), volume.id)
    available(conn, volume.id)


def test_a_volume_cinder_will_not_reserve_is_refused_with_cinders_reason(cloud, conn):
    server_id = cloud.local_server()["id"]
    volume = new_volume(conn, "taken")
    # Attached through Cinder alone (as fuxi's bare-metal path does): no BDM.
    attachment = conn.block_storage.create_attachment(
        volume.id, connector={"host": "elsewhere", "initiator": None})
    status, body = raw(conn, "POST", f"/servers/{server_id}/os-volume_attachments",
                       json={"volumeAttachment": {"volumeId": volume.id}})
    assert status == 400
    message = body["badRequest"]["message"]
    assert message.startswith(f"Invalid input received: Invalid volume: Volume {volume.id} "
                              "status must be available or downloading to reserve, but the "
                              "current status is attaching. (HTTP 400) (Request-ID: req-")
    assert list(conn.compute.volume_attachments(server_id)) == []
    conn.block_storage.delete_attachment(attachment.id)


def test_multiattach_needs_2_60_then_shares_one_loop_device(cloud, conn):
    mine, other = cloud.local_server()["id"], cloud.create_server("peer")["id"]
    volume = new_volume(conn, "shared", volume_type="multiattach")
    assert volume.is_multiattach is True
    body = {"volumeAttachment": {"volumeId": volume.id}}
    for version in (None, "2.1", "2.59"):
        status, answer = raw(conn, "POST", f"/servers/{mine}/os-volume_attachments",
                             microversion=version, json=body)
        assert (status, answer) == (400, {"badRequest": {"code": 400, "message": (
            "Multiattach volumes are only supported starting with compute API version "
            "2.60.")}}), version
    assert conn.block_storage.get_volume(volume.id).status == "available"

    status, answer = raw(conn, "POST", f"/servers/{mine}/os-volume_attachments",
                         microversion="2.60", json=body)
    assert status == 200 and set(answer["volumeAttachment"]) == {
        "id", "serverId", "volumeId", "device"}
    in_use(conn, volume.id)
    conn.compute.create_volume_attachment(other, volume.id)  # openstacksdk sends 2.89
    wait_until(lambda: len(conn.block_storage.get_volume(volume.id).attachments) == 2,
               what="two attachments")
    volume = conn.block_storage.get_volume(volume.id)
    assert volume.status == "in-use"
    assert {a["server_id"] for a in volume.attachments} == {mine, other}
    image = cloud._backend.path(volume.id)
    [loop] = losetup_j(image)
    assert os.readlink(by_id(cloud, volume.id)) == loop
    status, answer = raw(conn, "POST", f"/servers/{mine}/os-volume_attachments",
                         microversion="2.60", json=body)
    assert (status, answer["badRequest"]["message"]) == (
        400, f"Invalid volume: volume {volume.id} already attached")

    conn.compute.delete_volume_attachment(Server(id=mine), volume.id)
    wait_until(lambda: len(conn.block_storage.get_volume(volume.id).attachments) == 1,
               what="one attachment left")
    assert conn.block_storage.get_volume(volume.id).status == "in-use"
    assert losetup_j(image) == [loop]  # the peer still uses it
    assert not os.path.lexists(by_id(cloud, volume.id))
    conn.compute.delete_volume_attachment(Server(id=other), volume.id)
    available(conn, volume.id)
    assert losetup_j(image) == []


def test_restart_recreates_links_and_finishes_cut_short_attaches(tmp_path):
    state = tmp_path / "state"
    dc = DevCloud(state).start()
    try:
        conn = connect(dc)
        server_id = dc.local_server()["id"]
        done = new_volume(conn, "done")
        conn.compute.create_volume_attachment(server_id, done.id, tag="done")
        in_use(conn, done.id)
        [old_loop] = losetup_j(dc._backend.path(done.id))
        disk_root = dc.disk_root
        # Stopped while the compute host is still at work on this one.
        dc.latency = LatencyProfile(initialize_connection=1)
        pending = new_volume(conn, "pending")
        conn.compute.create_volume_attachment(server_id, pending.id)
        time.sleep(0.1)
    finally:
        dc.stop()
    # Meanwhile the guest rebooted (links gone) and the kernel lost the loop device.
    shutil.rmtree(disk_root)
    subprocess.run(["losetup", "-d", old_loop], check=True)

    dc = DevCloud(state, port=dc.port).start()
    try:
        assert dc.local_server()["id"] == server_id
        conn = connect(dc)
        [loop] = losetup_j(dc._backend.path(done.id))
        assert os.readlink(by_id(dc, done.id)) == loop
        assert [d["serial"] for d in meta_data(dc)["devices"]] == [done.id]
        in_use(conn, pending.id)
        assert os.path.islink(by_id(dc, pending.id))
        for volume in (done, pending):
            conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
            available(conn, volume.id)
        assert loop_devices_under(state) == {}
    finally:
        dc.stop()
        leaked = release_loop_devices_under(tmp_path)
    assert not leaked


def test_concurrent_attaches_to_one_server(cloud, conn):
    server_id = cloud.local_server()["id"]
    volumes = [new_volume(conn, f"c{i}") for i in range(5)]
    errors = []

    def attach(volume):
        try:
            connect(cloud).compute.create_volume_attachment(server_id, volume.id)
        except Exception as exc:  # noqa: BLE001 (reported below, in the test's thread)
            errors.append(repr(exc))

    threads = [threading.Thread(target=attach, args=(v,)) for v in volumes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    for volume in volumes:
        in_use(conn, volume.id)
    listed = list(conn.compute.volume_attachments(server_id))
    assert sorted(a.device for a in listed) == [f"/dev/vd{c}" for c in "bcdef"]
    assert len({os.readlink(by_id(cloud, v.id)) for v in volumes}) == 5
    assert len(by_path_links(cloud)) == 10
    for volume in volumes:
        conn.compute.delete_volume_attachment(Server(id=server_id), volume.id)
    for volume in volumes:
        available(conn, volume.id)
    assert loop_devices_under(cloud.state_dir) == {}
