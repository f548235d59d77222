"""Unit tests of devcloud's share service pieces: backends, rule checks, hooks, negotiation."""

import base64

import pytest

from storage_core.devcloud.faults import OPERATIONS
from storage_core.devcloud.latency import LatencyProfile
from storage_core.devcloud.manila import SHARE
from storage_core.devcloud.microversion import APIVersion, VersionError
from storage_core.devcloud.shares import (
    ShareBackends,
    ShareError,
    cephx_key,
    directory_hooks,
    validate_access,
)


def test_export_paths_and_subdirs_per_protocol():
    backends = ShareBackends(glusterfs_server="gl", glusterfs_volume="vol",
                             cephfs_mon="mon:6789", nfs_server="nfs")
    assert backends.export_path("glusterfs", "X") == "gl:/vol/share-X"
    assert backends.export_path("CEPHFS", "X") == "mon:6789:/volumes/_nogroup/X"
    assert backends.export_path("NFS", "X") == "nfs:/exports/X"
    assert backends.subdir("GLUSTERFS", "X") == "share-X"
    assert backends.subdir("CEPHFS", "X") == "volumes/_nogroup/X"
    assert ShareBackends().to_dict() == {
        "nfs_server": "127.0.0.1", "glusterfs_server": "127.0.0.1",
        "glusterfs_volume": "devcloud", "cephfs_mon": "127.0.0.1:6789", "cephfs_name": "cephfs"}
    with pytest.raises(ValueError):
        ShareBackends(glusterfs_volume="a/b")
    with pytest.raises(ValueError):
        ShareBackends(cephfs_mon="")
    with pytest.raises(ValueError, match="unknown"):
        ShareBackends().updated({"smb_server": "x"})


@pytest.mark.parametrize("access_type,access_to,ceph,ipv6,message", [
    ("ip", "10.0.0.1", True, False, None),
    ("ip", "10.0.0.0/8", True, False, None),
    ("ip", "10.0.0.1/8", True, False, "has host bits set"),
    ("ip", "::1", True, False, "Expected 4 octets"),
    ("ip", "::1", True, True, None),
    ("cephx", "alice", True, False, None),
    ("cephx", "client.alice", True, False, "Ceph IDs may not contain periods."),
    ("cephx", "", True, False, "Ceph IDs may not be empty."),
    ("cephx", "alice", False, False, "Only 'ip', 'user' or 'cert' access types"),
    ("cert", "x" * 64, True, False, None),
    ("cert", "x" * 65, True, False, "Invalid CN"),
    ("user", "bob1", True, False, None),
    ("user", "a:b:c", True, False, "Invalid user or group name"),
    ("fancy", "x", True, False, "Only 'ip', 'user', 'cert' or 'cephx' access types"),
])
def test_validate_access_like_manila(access_type, access_to, ceph, ipv6, message):
    if message is None:
        validate_access(access_type, access_to, enable_ceph=ceph, enable_ipv6=ipv6)
    else:
        with pytest.raises(ShareError) as err:
            validate_access(access_type, access_to, enable_ceph=ceph, enable_ipv6=ipv6)
        assert err.value.status == 400 and message in err.value.message


def test_cephx_keys_look_like_ceph_secrets():
    key = cephx_key()
    raw = base64.b64decode(key)
    assert key.startswith("AQ") and len(raw) == 28 and raw[-18:-16] == b"\x10\x00"
    assert cephx_key() != key


def test_directory_hooks(tmp_path):
    make, remove = directory_hooks({"glusterfs": tmp_path})
    make("GLUSTERFS", "abc")
    assert (tmp_path / "share-abc").is_dir()
    (tmp_path / "share-abc" / "data").write_text("x")
    remove("GLUSTERFS", "abc")
    assert not (tmp_path / "share-abc").exists()
    remove("GLUSTERFS", "abc")  # already gone: fine
    make("NFS", "abc")  # no mount for NFS: recorded only
    assert list(tmp_path.iterdir()) == []


def test_manila_microversion_headers():
    """As manila 23 answers (contrib/realcloud): its own header only, no "latest"."""
    assert SHARE.negotiate({}) == APIVersion(2, 0)
    assert SHARE.negotiate({"X-OpenStack-Manila-API-Version": "2.45"}) == APIVersion(2, 45)
    # Manila ignores the standard header: 2.0, as with no header.
    assert SHARE.negotiate({"OpenStack-API-Version": "shared-file-system 2.7"}) == APIVersion(2, 0)
    assert SHARE.negotiate({"OpenStack-API-Version": "shared-file-system 2.7",
                            "X-OpenStack-Manila-API-Version": "2.9"}) == APIVersion(2, 9)
    for text, status in (("latest", 400), ("2", 400), ("1.9", 406)):
        with pytest.raises(VersionError) as err:
            SHARE.negotiate({"X-OpenStack-Manila-API-Version": text})
        assert err.value.status == status, text
    assert SHARE.response_headers(APIVersion(2, 82)) == {
        "X-OpenStack-Manila-API-Version": "2.82", "Vary": "X-OpenStack-Manila-API-Version"}


def test_new_fault_operations_and_latency_field():
    for name in ("share.create", "share.get", "share.list", "share.delete", "access.create",
                 "access.list", "access.delete", "export_locations.list"):
        assert name in OPERATIONS
    assert LatencyProfile.coerce({"access": 0.5}).access == 0.5
    assert LatencyProfile.named("none").access == 0.0
