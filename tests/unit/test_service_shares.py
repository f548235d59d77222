"""VolumeService with Manila shares next to Cinder volumes, on the in-memory fakes."""

import pytest

from storage_core.config import ShareConfig
from storage_core.errors import CloudError, Conflict, FilesystemError, InvalidInput, NotFound
from storage_core.fakes import fake_volume_service
from storage_core.models import AccessRule


@pytest.fixture
def fakes(tmp_path):
    return fake_volume_service(str(tmp_path))


def rules(fakes, share):
    return [(r.access_type, r.access_to) for r in fakes.manila.rules(share.id)]


def test_create_a_share_and_report_it(fakes):
    share = fakes.service.create("files", {"backend": "manila", "proto": "cephfs", "size": "2"})
    assert (share.proto, share.size_gb) == ("CEPHFS", 2)
    assert fakes.cinder.volumes == {}
    status = fakes.service.get("files").status
    assert (status["backend"], status["share_id"], status["proto"], status["mounts"]) == (
        "manila", share.id, "cephfs", 0)
    # Creating it again is the same share; different options are a conflict.
    assert fakes.service.create("files", {"backend": "manila", "proto": "cephfs", "size": "2"}).id == share.id
    with pytest.raises(Conflict, match=r"proto cephfs \(asked nfs\)"):
        fakes.service.create("files", {"backend": "manila", "proto": "nfs", "size": "2"})


def test_list_holds_volumes_and_shares(fakes):
    fakes.service.create("block", {})
    fakes.service.create("files", {"backend": "manila"})
    listed = {i.name: i.status["backend"] for i in fakes.service.list()}
    assert listed == {"block": "cinder", "files": "manila"}


def test_one_name_is_one_volume_across_backends(fakes):
    fakes.service.create("data", {})
    with pytest.raises(Conflict, match=r"already exists as a Cinder volume .*backend=cinder"):
        fakes.service.create("data", {"backend": "manila"})
    assert fakes.manila.shares == {}


def test_a_name_fuxi_owns_in_both_backends_is_a_conflict(fakes):
    fakes.cinder.add_volume("twice")
    fakes.manila.add_share("twice")
    with pytest.raises(Conflict, match="fuxi owns both a Cinder volume .* and a Manila share"):
        fakes.service.get("twice")


def test_remembered_backend_is_asked_alone(fakes):
    fakes.service.create("block", {})
    fakes.manila.calls.clear()
    fakes.service.get("block")
    fakes.service.mount("block", "c1")
    assert fakes.manila.calls == []


@pytest.mark.parametrize("proto,access", [("NFS", ("ip", "192.0.2.10")),
                                          ("CEPHFS", ("cephx", "fuxi-host-a")),
                                          ("GLUSTERFS", ("cert", "host-a"))])
def test_first_mount_grants_this_host_last_unmount_revokes(fakes, proto, access):
    share = fakes.service.create("files", {"backend": "manila", "proto": proto.lower()})
    path = fakes.service.mount("files", "c1")
    assert fakes.service.mount("files", "c2") == path
    assert rules(fakes, share) == [access]
    assert [m[:3] for m in fakes.mounter.mounts] == [(proto, f"fake-server:/exports/{share.id}", path)]
    assert fakes.service.path("files") == path
    assert fakes.service.get("files").status["attached"] is True
    fakes.service.unmount("files", "c1")
    assert rules(fakes, share) == [access] and fakes.filesystems.is_mounted(path)
    fakes.service.unmount("files", "c2")
    assert rules(fakes, share) == [] and not fakes.filesystems.is_mounted(path)
    assert len(fakes.mounter.forgotten_keys) == 1


def test_configured_cephx_id_and_cert_name_are_used(tmp_path):
    fakes = fake_volume_service(str(tmp_path), shares=ShareConfig(cephx_client_id="node7",
                                                                  glusterfs_cert_cn="node7.example"))
    ceph = fakes.service.create("c", {"backend": "manila", "proto": "cephfs"})
    gluster = fakes.service.create("g", {"backend": "manila", "proto": "glusterfs"})
    fakes.service.mount("c", "x")
    fakes.service.mount("g", "x")
    assert rules(fakes, ceph) == [("cephx", "node7")]
    assert rules(fakes, gluster) == [("cert", "node7.example")]


def test_failed_mount_revokes_the_rule_and_leaves_nothing(fakes):
    share = fakes.service.create("files", {"backend": "manila", "proto": "nfs"})
    fakes.mounter.fail_mount = True
    with pytest.raises(FilesystemError, match="could not mount share 'files'.*from any of its exports"):
        fakes.service.mount("files", "c1")
    assert rules(fakes, share) == []
    assert fakes.service.get("files").status["mounts"] == 0
    assert fakes.service.path("files") is None
    fakes.mounter.fail_mount = False
    assert fakes.service.mount("files", "c1")


def test_rule_the_driver_refuses_is_revoked(fakes):
    share = fakes.service.create("files", {"backend": "manila", "proto": "glusterfs"})
    fakes.manila.refuse_access_type = "cert"
    with pytest.raises(CloudError, match="refused cert access"):
        fakes.service.mount("files", "c1")
    assert rules(fakes, share) == [] and fakes.mounter.mounts == []


def test_remove_refuses_while_another_host_has_access(fakes):
    share = fakes.service.create("files", {"backend": "manila"})
    fakes.manila.rules_by_share[share.id].append(AccessRule("r9", "ip", "198.51.100.7", "rw", "active"))
    with pytest.raises(Conflict, match=r"still used by 198\.51\.100\.7 \(ip\)"):
        fakes.service.remove("files")
    assert share.id in fakes.manila.shares


def test_remove_drops_this_hosts_leftover_rule_then_deletes(fakes):
    share = fakes.service.create("files", {"backend": "manila"})
    # A crash between asking for access and writing it down leaves a rule behind.
    fakes.manila.request_access(share.id, "ip", "192.0.2.10")
    fakes.service.remove("files")
    assert fakes.manila.shares == {}


def test_remove_refuses_while_mounted_here(fakes):
    fakes.service.create("files", {"backend": "manila"})
    fakes.service.mount("files", "c1")
    with pytest.raises(Conflict, match="still mounted 1 time"):
        fakes.service.remove("files")


def test_adopted_share_is_renamed_tagged_and_given_back_on_remove(fakes):
    theirs = fakes.manila.add_share("projects-data", proto="CEPHFS", owned=False)
    share = fakes.service.create("data", {"backend": "manila", "share_id": theirs.id})
    assert (share.id, share.name, share.owned, share.adopted) == (theirs.id, "data", True, True)
    assert fakes.service.create("data", {"backend": "manila", "share_id": theirs.id}).id == theirs.id
    assert fakes.service.get("data").status["adopted"] is True
    fakes.service.mount("data", "c1")
    fakes.service.unmount("data", "c1")
    fakes.service.remove("data")
    back = fakes.manila.shares[theirs.id]
    assert (back.name, back.owned) == ("projects-data", False)


def test_adopting_under_a_name_that_holds_another_share_is_refused(fakes):
    fakes.service.create("data", {"backend": "manila"})
    other = fakes.manila.add_share("x", owned=False)
    with pytest.raises(Conflict, match=f"not share {other.id}"):
        fakes.service.create("data", {"backend": "manila", "share_id": other.id})


def test_without_manila_shares_are_refused_and_volumes_work(fakes):
    fakes.manila.available = False
    with pytest.raises(InvalidInput, match=r"backend=manila cannot be used: no Manila endpoint.*usable: cinder"):
        fakes.service.create("files", {"backend": "manila"})
    fakes.service.create("block", {})
    assert [i.name for i in fakes.service.list()] == ["block"]
    with pytest.raises(NotFound):
        fakes.service.get("nothing")
    assert fakes.manila.calls == []


def test_mount_of_a_share_deleted_elsewhere_is_not_found(fakes):
    share = fakes.service.create("files", {"backend": "manila"})
    fakes.manila.delete(share)
    with pytest.raises(NotFound, match="'files' does not exist"):
        fakes.service.mount("files", "c1")


def test_share_not_available_is_not_mounted(fakes):
    fakes.manila.add_share("busy", status="extending")
    with pytest.raises(Conflict, match="'busy' is extending; it can be mounted only when available"):
        fakes.service.mount("busy", "c1")
