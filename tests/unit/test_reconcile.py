"""Start-up reconciliation on fakes: every kind of leftover a crash or a reboot
can leave, mended; what a live container uses, untouched."""

import re
from pathlib import Path

import pytest

from storage_core import crashpoints
from storage_core.errors import CloudError
from storage_core.fakes import fake_volume_service
from storage_core.models import POOL_KEY
from storage_core.state import HostVolume, Phase


@pytest.fixture
def parts(tmp_path):
    return fake_volume_service(str(tmp_path))


def state(parts):
    return parts.service._state


def test_a_live_mount_is_kept(parts):
    svc = parts.service
    svc.create("live", {})
    path = svc.mount("live", "c1")
    assert svc.reconcile() == []
    assert parts.filesystems.is_mounted(path)
    assert state(parts).mount_count("live") == 1
    assert parts.cinder.find("live").status == "in-use"


def test_a_mount_nobody_counted_is_taken_off_the_host(parts):
    svc = parts.service
    svc.create("v", {})
    path = svc.mount("v", "c1")
    state(parts).remove_mount("v", "c1")  # the last unmount stopped after uncounting
    repairs = svc.reconcile()
    assert repairs == ["volume v: it is mounted but no mount of it is counted; taken off this host"]
    assert not parts.filesystems.is_mounted(path)
    assert state(parts).host_volume("v") is None
    assert parts.cinder.find("v").status == "available" and parts.cinder.attachments == {}


def test_a_half_done_attach_is_undone(parts):
    svc = parts.service
    vol = svc.create("v", {})
    attachment_id, info = parts.cinder.create_attachment(vol.id, {"host": "fakehost"})
    state(parts).save_host_volume(HostVolume(name="v", volume_id=vol.id, phase=Phase.ATTACHING,
                                             attachment_id=attachment_id, connection_info=info))
    assert svc.reconcile() == ["volume v: its attach stopped half-way (attaching); taken off this host"]
    assert parts.cinder.attachments == {} and state(parts).host_volumes() == []


def test_an_attachment_made_after_the_intent_was_journaled_is_found_and_released(parts):
    svc = parts.service
    vol = svc.create("v", {})
    # The intent was journaled; the cloud made the attachment; the crash came before its id was.
    state(parts).save_host_volume(HostVolume(name="v", volume_id=vol.id, phase=Phase.ATTACHING))
    parts.attacher.attach(vol, lambda pending: None)
    svc.reconcile()
    assert parts.cinder.attachments == {} and state(parts).host_volumes() == []
    assert parts.cinder.find("v").status == "available"


def test_an_attachment_no_record_names_is_released_unless_not_ours_or_the_pools(parts):
    svc = parts.service
    ours = svc.create("ours", {})
    foreign = parts.cinder.add_volume("foreign", owned=False)
    pooled = parts.cinder.add_volume("fuxi-pool-1")
    parts.cinder.update_metadata(pooled.id, {POOL_KEY: "k"}, [])
    for vol in (ours, foreign, pooled):
        parts.attacher.attach(vol, lambda pending: None)
    repairs = svc.reconcile()
    assert len(repairs) == 1 and re.fullmatch(
        r"volume ours: released attachment \S+ of a volume no journal record named", repairs[0])
    assert sorted(parts.cinder.attachments.values()) == sorted([foreign.id, pooled.id])


def test_an_attachment_of_a_journaled_volume_is_the_records_even_under_another_id(parts):
    """Nova before 2.89 names no attachment: the journal keys it by the volume id,
    while Cinder's attachment has an id of its own. A live mount must stay."""
    svc = parts.service
    svc.create("nova-style", {})
    path = svc.mount("nova-style", "c1")
    hv = state(parts).host_volume("nova-style")
    state(parts).save_host_volume(HostVolume(**{**hv.__dict__, "attachment_id": hv.volume_id}))
    assert svc.reconcile() == []
    assert parts.filesystems.is_mounted(path) and len(parts.cinder.attachments) == 1


def test_counts_of_a_volume_the_host_does_not_hold_are_dropped(parts):
    state(parts).add_mount("ghost", "c1")
    assert parts.service.reconcile() == [
        "volume ghost: dropped mount counts of a volume this host does not hold"]
    assert state(parts).mount_counts() == {}


def test_after_a_reboot_every_count_is_void_and_every_volume_let_go(parts):
    svc = parts.service
    svc.create("v", {})
    path = svc.mount("v", "c1")
    svc.reconcile()  # records this boot
    state(parts).set_host_fact("boot_id", "an-earlier-boot")
    parts.filesystems.unmount(path)  # a reboot unmounts everything
    repairs = svc.reconcile()
    assert repairs[0] == "volume v: the host rebooted; its mount counts are void"
    assert state(parts).mount_counts() == {} and state(parts).host_volumes() == []
    assert parts.cinder.attachments == {}


def test_a_failed_repair_keeps_the_record_for_later(parts):
    svc = parts.service
    svc.create("v", {})
    svc.mount("v", "c1")
    state(parts).remove_mount("v", "c1")

    def cloud_down(attachment_id):
        raise CloudError("the cloud is down")

    parts.cinder.delete_attachment = cloud_down
    assert svc.reconcile() == []
    assert state(parts).host_volume("v") is not None


def test_a_share_whose_rule_was_asked_for_but_not_journaled_gets_it_revoked(tmp_path):
    parts = fake_volume_service(str(tmp_path))
    svc = parts.service
    share = svc.create("s", {"backend": "manila", "proto": "glusterfs"})
    state(parts).save_host_volume(HostVolume(name="s", volume_id=share.id, phase=Phase.ATTACHING,
                                             backend="manila"))
    parts.manila.request_access(share.id, "cert", "host-a")
    assert parts.manila.rules(share.id)
    svc.reconcile()
    assert parts.manila.rules(share.id) == [] and state(parts).host_volumes() == []


def test_every_crash_point_in_the_code_is_listed_and_every_listed_one_is_in_the_code():
    root = Path(crashpoints.__file__).parent
    used = set()
    for path in root.rglob("*.py"):
        used.update(re.findall(r'crash_point\("([^"]+)"\)', path.read_text()))
    assert used == set(crashpoints.POINTS)


def test_an_unknown_crash_point_is_refused(monkeypatch):
    monkeypatch.setenv(crashpoints.ENV, "mount.mounted, nowhere")
    with pytest.raises(ValueError, match="unknown crash points nowhere; known: create.sent"):
        crashpoints._armed()


class AttachmentsOnly:
    """A Cinder backend that knows only what GET /attachments and a volume listing answer."""

    def __init__(self, summaries, owned=()):
        self.summaries = summaries
        self.owned = list(owned)

    def attachment_summaries(self, volume_id=None, instance_id=None):
        return [a for a in self.summaries if volume_id in (None, a["volume_id"])]

    def list_owned(self):
        return self.owned


def baremetal(backend):
    from storage_core.attach.baremetal import BareMetalAttacher
    from storage_core.host import HostIdentity

    return BareMetalAttacher(backend, brick=None, host=HostIdentity(name="host-a", ip="192.0.2.10"))


def summary(attachment_id, status, instance=None, volume_id="v"):
    return {"id": attachment_id, "volume_id": volume_id, "status": status, "instance": instance}


def test_a_bare_metal_host_takes_for_its_own_only_the_one_attachment_being_made():
    assert baremetal(AttachmentsOnly([summary("a1", "attaching")])).host_attachments("v") == [("v", "a1")]
    assert baremetal(AttachmentsOnly([summary("a1", "reserved")])).host_attachments("v") == [("v", "a1")]
    # Completed ones were journaled before completing; a Nova server's are Nova's.
    assert baremetal(AttachmentsOnly([summary("a1", "attached"),
                                      summary("a2", "attaching", instance="srv")])).host_attachments("v") == []
    # Two being made at once (a multiattach volume): nobody can tell; leave them.
    assert baremetal(AttachmentsOnly([summary("a1", "attaching"),
                                      summary("a2", "attaching")])).host_attachments("v") == []


def test_without_a_journal_a_bare_metal_host_finds_the_attachments_naming_it_as_holder():
    from storage_core.models import HOLDER_PREFIX, CloudAttachment, CloudVolume

    def vol(vid, *holders):
        return CloudVolume(id=vid, name=vid, size_gb=1, status="in-use", created_at=None, attachments=tuple(
            CloudAttachment(f"{vid}-{h}", device=HOLDER_PREFIX + h) for h in holders))

    attacher = baremetal(AttachmentsOnly([], owned=[vol("v1", "host-a"), vol("v2", "host-b"),
                                                    vol("v3", "host-b", "host-a")]))
    assert attacher.host_attachments() == [("v1", "v1-host-a"), ("v3", "v3-host-a")]
