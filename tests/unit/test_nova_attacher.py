"""NovaAttacher with fakes: journal, wait, find, and undo on failure; NovaBackend's
microversion handling and error translation with a stub compute adapter."""

import os
from types import SimpleNamespace

import pytest
from openstack import exceptions as sdk_exceptions
from openstack.compute.v2.server import Server
from openstack.compute.v2.volume_attachment import VolumeAttachment

from storage_core.attach.devices import DeviceFinder
from storage_core.attach.nova import NovaAttacher
from storage_core.backends.nova import NovaBackend
from storage_core.errors import AttachError, CloudError, Conflict, NotFound, Timeout
from storage_core.fakes import (
    FakeCinder,
    FakeClock,
    FakeDeviceFinder,
    FakeNova,
    RecordingExecutor,
    fake_volume_service,
)
from storage_core.models import CloudAttachment

ME = "0f3c1a2b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
OTHER = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@pytest.fixture
def parts():
    cinder = FakeCinder()
    nova = FakeNova(cinder)
    devices = FakeDeviceFinder()
    clock = FakeClock()
    attacher = NovaAttacher(nova, cinder, devices, ME, clock=clock, in_use_timeout=30.0, detach_timeout=30.0)
    return SimpleNamespace(cinder=cinder, nova=nova, devices=devices, clock=clock, attacher=attacher)


def _attached_elsewhere(cinder, multiattach, name="shared", sharing=None):
    vol = cinder.add_volume(name, status="in-use", multiattach=multiattach)
    metadata = {**vol.metadata, **({"fuxi_multiattach": sharing} if sharing else {})}
    vol = type(vol)(**{**vol.__dict__, "metadata": metadata,
                       "attachments": (CloudAttachment("att-other", "otherhost", OTHER),)})
    cinder.volumes[vol.id] = vol
    return vol


def test_attach_journals_then_waits_then_finds(parts):
    parts.nova.auto_settle = False
    vol = parts.cinder.add_volume("v1")
    parts.devices.devices[vol.id] = "/dev/vdc"
    parts.clock.at(0.4, lambda: parts.nova.settle(vol.id))
    journaled = []

    def journal(pending):
        journaled.append((pending, parts.cinder.volumes[vol.id].status, list(parts.devices.calls)))

    result = parts.attacher.attach(vol, journal)

    [(pending, status_then, finds_then)] = journaled
    assert status_then == "attaching" and finds_then == []  # journaled before waiting or looking
    assert pending.connection_info == {"driver_volume_type": "nova", "server_id": ME, "nova_device": "/dev/vdb"}
    assert pending.attachment_id and pending.device_path is None
    assert parts.clock.now >= 0.4  # waited for in-use before looking for the disk
    assert parts.devices.calls == [(vol.id, "/dev/vdb")]  # Nova's name passed only to be logged
    assert result.device_path == "/dev/vdc" and result.attachment_id == pending.attachment_id
    assert [c[0] for c in parts.nova.calls] == ["attach_volume"]


def test_failing_to_find_the_disk_detaches_through_nova(parts):
    vol = parts.cinder.add_volume("v1")
    journaled = []
    with pytest.raises(AttachError, match="did not appear"):
        parts.attacher.attach(vol, journaled.append)
    assert journaled  # a crash would have left a record to undo
    assert [c[0] for c in parts.nova.calls] == ["attach_volume", "detach_volume"]
    assert parts.cinder.volumes[vol.id].status == "available" and parts.cinder.volumes[vol.id].attachments == ()
    assert parts.nova.volume_attachments(ME) == []


def test_cinder_error_or_a_failed_compute_attach_is_undone(parts):
    vol = parts.cinder.add_volume("v1")
    parts.nova.auto_settle = False
    parts.clock.at(0.2, lambda: parts.cinder.volumes.update(
        {vol.id: type(vol)(**{**parts.cinder.volumes[vol.id].__dict__, "status": "error_attaching"})}))
    with pytest.raises(CloudError, match="error_attaching"):
        parts.attacher.attach(vol, lambda p: None)
    assert ("detach_volume", ME, vol.id) in parts.nova.calls

    other = parts.cinder.add_volume("v2")
    parts.nova.fail_in_compute = True  # Nova answered, then gave up: back to available
    with pytest.raises(CloudError, match="went back to available"):
        parts.attacher.attach(other, lambda p: None)
    assert parts.cinder.volumes[other.id].status == "available"


def test_never_in_use_times_out_and_detaches(parts):
    parts.nova.auto_settle = False
    vol = parts.cinder.add_volume("v1")
    with pytest.raises(Timeout, match="in-use"):
        parts.attacher.attach(vol, lambda p: None)
    assert parts.clock.now == pytest.approx(30.0, abs=0.1)
    assert parts.cinder.volumes[vol.id].status == "available" and parts.devices.calls == []


def test_a_journal_that_fails_still_leaves_nothing_attached(parts):
    vol = parts.cinder.add_volume("v1")

    def journal(pending):
        raise OSError("state disk full")

    with pytest.raises(OSError):
        parts.attacher.attach(vol, journal)
    assert parts.cinder.volumes[vol.id].status == "available"


def test_refuses_a_volume_attached_to_another_instance(parts):
    vol = _attached_elsewhere(parts.cinder, multiattach=False)
    with pytest.raises(Conflict, match=OTHER):
        parts.attacher.attach(vol, lambda p: None)
    assert parts.nova.calls == []


def test_multiattach_volume_in_use_elsewhere_waits_for_our_attachment(parts):
    vol = _attached_elsewhere(parts.cinder, multiattach=True)
    parts.devices.devices[vol.id] = "/dev/vdc"
    result = parts.attacher.attach(vol, lambda p: None)
    assert result.device_path == "/dev/vdc"
    assert {a.server_id for a in parts.cinder.volumes[vol.id].attachments} == {ME, OTHER}

    # Detach waits until *our* attachment is gone; the volume stays in-use for the other.
    parts.attacher.detach(result)
    current = parts.cinder.volumes[vol.id]
    assert current.status == "in-use" and [a.server_id for a in current.attachments] == [OTHER]


def test_multiattach_needs_compute_2_60(parts):
    parts.nova.max_microversion = "2.59"
    vol = parts.cinder.add_volume("shared", multiattach=True)
    with pytest.raises(CloudError, match="2.60"):
        parts.attacher.attach(vol, lambda p: None)
    parts.nova.max_microversion = "2.60"
    parts.devices.devices[vol.id] = "/dev/vdc"
    parts.attacher.attach(vol, lambda p: None)
    assert parts.nova.calls[-1] == ("attach_volume", ME, vol.id, "2.60")


def test_attach_adopts_an_attachment_this_instance_already_has(parts):
    vol = parts.cinder.add_volume("v1")
    parts.nova.attach_volume(ME, vol.id)  # e.g. we stopped before journaling it
    parts.devices.devices[vol.id] = "/dev/vdc"
    result = parts.attacher.attach(vol, lambda p: None)
    assert result.device_path == "/dev/vdc"
    assert [c[0] for c in parts.nova.calls] == ["attach_volume"]  # not asked twice


def test_detach_waits_for_available_and_is_idempotent(parts):
    vol = parts.cinder.add_volume("v1")
    parts.devices.devices[vol.id] = "/dev/vdc"
    attachment = parts.attacher.attach(vol, lambda p: None)
    parts.attacher.detach(attachment)
    assert parts.cinder.volumes[vol.id].status == "available"
    parts.attacher.detach(attachment)  # already gone: fine
    del parts.cinder.volumes[vol.id]
    parts.attacher.detach(attachment)  # volume deleted meanwhile: fine too


def test_disk_found_by_serial_although_nova_names_another(tmp_path, parts):
    """The real DeviceFinder on a tmp /dev/disk: Nova says vdb, the guest made vdc."""
    dev, by_id = tmp_path / "dev", tmp_path / "disk" / "by-id"
    dev.mkdir()
    by_id.mkdir(parents=True)
    (dev / "vdb").write_bytes(b"other volume")

    def hypervisor(server_id, volume_id, nova_device):
        # The disk shows up a little after Nova answered, under a name Nova did not say.
        (dev / "vdc").write_bytes(b"ours")
        link = str(by_id / f"virtio-{volume_id[:20]}")
        parts.clock.at(parts.clock.now + 0.3, lambda: os.symlink(str(dev / "vdc"), link))

    parts.nova.on_attach = hypervisor
    finder = DeviceFinder(RecordingExecutor(), str(tmp_path / "disk"), str(tmp_path / "sys"), 10.0, parts.clock)
    attacher = NovaAttacher(parts.nova, parts.cinder, finder, ME, clock=parts.clock)
    vol = parts.cinder.add_volume("v1")
    assert attacher.attach(vol, lambda p: None).device_path == str(dev / "vdc")


def test_service_mounts_a_multiattach_volume_in_use_elsewhere(tmp_path, parts):
    vol = _attached_elsewhere(parts.cinder, multiattach=True, sharing="shared")
    _attached_elsewhere(parts.cinder, multiattach=False, name="single")
    _attached_elsewhere(parts.cinder, multiattach=True, name="exclusive")  # untagged: one host at a time
    parts.devices.devices[vol.id] = "/dev/vdc"
    service = fake_volume_service(str(tmp_path), cinder=parts.cinder, attacher=parts.attacher).service
    assert service.mount("shared", "c1").endswith("shared")
    with pytest.raises(Conflict, match="only when available"):
        service.mount("single", "c1")
    with pytest.raises(Conflict, match="attached to otherhost; it is multiattach, but fuxi mounts it on one host"):
        service.mount("exclusive", "c1")
    service.unmount("shared", "c1")
    assert [a.server_id for a in parts.cinder.volumes[vol.id].attachments] == [OTHER]


# -- NovaBackend with a stub compute adapter ----------------------------


class StubCompute:
    """Enough of openstacksdk's compute proxy: version discovery and the attachment calls."""

    def __init__(self, max_microversion="2.95", default_microversion=None, fail=None):
        self.default_microversion = default_microversion
        self.max_microversion = max_microversion
        self.fail = fail
        self.calls = []

    def get_endpoint_data(self):
        return SimpleNamespace(min_microversion="2.1", max_microversion=self.max_microversion)

    def create_volume_attachment(self, server, volume=None, **attrs):
        self.calls.append(("create", server, volume, attrs))
        if self.fail:
            raise self.fail
        # What openstacksdk itself would send for this call.
        version = VolumeAttachment._get_microversion(self)
        return SimpleNamespace(volume_id=volume, attachment_id="att-1", device="/dev/vdb", microversion=version)

    def delete_volume_attachment(self, server, volume, ignore_missing=True):
        self.calls.append(("delete", server, volume, ignore_missing))
        if self.fail:
            raise self.fail

    def volume_attachments(self, server):
        return [SimpleNamespace(volume_id="vol-1", attachment_id="att-1", device="/dev/vdb")]


def _backend(compute):
    return NovaBackend(SimpleNamespace(compute=compute))


def test_openstacksdk_negotiates_the_attachment_microversion_itself():
    # The proxy call takes no microversion: openstacksdk sends min(2.89, server max),
    # or the version pinned in the cloud config. Pinned here so an upgrade that changes it shows.
    assert VolumeAttachment._get_microversion(StubCompute("2.95")) == "2.89"
    assert VolumeAttachment._get_microversion(StubCompute("2.60")) == "2.60"
    assert VolumeAttachment._get_microversion(StubCompute("2.95", default_microversion="2.50")) == "2.50"


def test_backend_multiattach_path_checks_2_60():
    compute = StubCompute("2.60")
    answer = _backend(compute).attach_volume(ME, "vol-1", multiattach=True)
    assert answer.device == "/dev/vdb" and answer.attachment_id == "att-1" and answer.server_id == ME
    # The volume as the positional argument; tagged, so the metadata service lists the disk.
    assert compute.calls == [("create", ME, "vol-1", {"tag": "fuxi"})]
    for too_old in (StubCompute("2.59"), StubCompute("2.95", default_microversion="2.53")):
        with pytest.raises(CloudError, match="microversion 2.60"):
            _backend(too_old).attach_volume(ME, "vol-1", multiattach=True)
        assert too_old.calls == []
    # A plain volume does not care about the version.
    _backend(StubCompute("2.53")).attach_volume(ME, "vol-1")


def test_backend_attaches_untagged_where_nova_cannot_tag():
    class NoTags(StubCompute):
        def create_volume_attachment(self, server, volume=None, **attrs):
            if attrs.get("tag"):
                self.calls.append(("create", server, volume, attrs))
                raise sdk_exceptions.BadRequestException("Tagged attach is not supported by this hypervisor")
            return super().create_volume_attachment(server, volume, **attrs)

    compute = NoTags("2.60")
    assert _backend(compute).attach_volume(ME, "vol-1").attachment_id == "att-1"
    assert [c[3] for c in compute.calls] == [{"tag": "fuxi"}, {}]
    # Below 2.49 no tag is sent at all.
    old = StubCompute("2.48")
    _backend(old).attach_volume(ME, "vol-1")
    assert old.calls == [("create", ME, "vol-1", {})]


def test_backend_translates_errors():
    def raising(exc):
        return _backend(StubCompute(fail=exc))

    with pytest.raises(Conflict, match="Nova refused attaching"):
        raising(sdk_exceptions.BadRequestException("Invalid volume: in-use")).attach_volume(ME, "vol-1")
    with pytest.raises(Conflict):
        raising(sdk_exceptions.ConflictException("server is shelved")).attach_volume(ME, "vol-1")
    with pytest.raises(NotFound, match="not found in Nova"):
        raising(sdk_exceptions.NotFoundException("no such server")).attach_volume(ME, "vol-1")
    server_error = sdk_exceptions.HttpException("boom")
    server_error.status_code = 500
    with pytest.raises(CloudError, match="Nova answered HTTP 500"):
        raising(server_error).detach_volume(ME, "vol-1")


def test_backend_detach_ignores_missing_and_skips_the_argument_order_probe():
    compute = StubCompute()
    _backend(compute).detach_volume(ME, "vol-1")
    [(_, server, volume, ignore_missing)] = compute.calls
    # A typed Server: openstacksdk then does not GET the server to check argument order.
    assert isinstance(server, Server) and server.id == ME and volume == "vol-1" and ignore_missing
    assert [a.volume_id for a in _backend(compute).volume_attachments(ME)] == ["vol-1"]
