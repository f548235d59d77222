"""storage_core's ManilaBackend against devcloud's Manila and a real Manila,
with the same assertions.

The real Manila (contrib/realcloud, manila 23 from PyPI with our test share
driver) and devcloud both hand out their GLUSTERFS and CEPHFS shares as
directories on the session's real GlusterFS and CephFS servers, in the same
layout, so the checks on export paths and on the directories hold for both.
Whatever real Manila answers differently is a devcloud bug.
"""

import base64
import uuid

import pytest

from storage_core.backends.manila import ManilaBackend
from storage_core.errors import CloudError, Conflict, NotFound
from storage_core.models import OWNER_KEY, OWNER_VALUE, CloudShare, ShareSpec

CLOUD_KINDS = ("devcloud", "realcloud")
SHARE_SERVERS = True  # devcloud's Manila on the session's GlusterFS and CephFS (conftest)

# The access type each protocol's driver applies, a client for it, and one the
# protocol's driver refuses (the rule is accepted, then ends in error).
ACCESS = {
    "NFS": ("ip", "10.0.0.0/24", ("cert", "client.example.com")),
    "CEPHFS": ("cephx", "alice", ("ip", "10.0.0.1")),
    "GLUSTERFS": ("cert", "client.example.com", ("cephx", "bob")),
}
PROTOCOLS = tuple(ACCESS)


@pytest.fixture
def manila(cloud):
    # Short bounds: both clouds settle in about a second, and a hang must
    # fail the test rather than stall the session.
    return ManilaBackend(cloud.sdk, create_timeout=60.0, delete_timeout=60.0,
                         access_timeout=30.0)


def unique_name(proto):
    return f"conformance-{proto.lower()}-{uuid.uuid4().hex[:8]}"


def share_dir(proto, share_id, glusterfs_server, cephfs_server):
    """Where the share lives on the real file server (NFS: nowhere)."""
    if proto == "GLUSTERFS":
        return glusterfs_server.root_mount / f"share-{share_id}"
    if proto == "CEPHFS":
        return cephfs_server.root_mount / "volumes" / "_nogroup" / share_id
    return None


def expected_export(proto, share_id, glusterfs_server, cephfs_server):
    if proto == "GLUSTERFS":
        return f"{glusterfs_server.server}:/{glusterfs_server.volume}/share-{share_id}"
    if proto == "CEPHFS":
        return f"{cephfs_server.mon}:/volumes/_nogroup/{share_id}"
    return f"127.0.0.1:/exports/{share_id}"


def assert_cephx_key(key):
    """A Ceph secret: base64 of a 12-byte header (type 1 = AES) and a 16-byte key."""
    assert isinstance(key, str) and key.startswith("AQ"), key
    raw = base64.b64decode(key, validate=True)
    assert len(raw) == 28 and raw[:2] == b"\x01\x00", key


def public_fields(share: CloudShare):
    return (share.id, share.name, share.size_gb, share.proto, share.status, dict(share.metadata),
            share.share_type, share.availability_zone)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_share_lifecycle(manila, proto, glusterfs_server, cephfs_server):
    name = unique_name(proto)
    share = manila.create(ShareSpec(name=name, size_gb=2, proto=proto))
    assert (share.name, share.size_gb, share.proto, share.status) == (name, 2, proto, "available")
    assert share.metadata == {OWNER_KEY: OWNER_VALUE} and share.owned
    assert share.share_type == "default" and share.availability_zone == "nova"
    assert share.created_at is not None and share.created_at.tzinfo is not None
    assert public_fields(manila.find(name)) == public_fields(share)
    assert public_fields(manila.get(share.id)) == public_fields(share)
    assert manila.find(name + "-other") is None
    assert share.id in [s.id for s in manila.list_owned()]

    [location] = manila.export_locations(share.id)
    assert (location.path, location.preferred) == (
        expected_export(proto, share.id, glusterfs_server, cephfs_server), True)
    directory = share_dir(proto, share.id, glusterfs_server, cephfs_server)
    if directory is not None:
        assert directory.is_dir()

    access_type, access_to, _ = ACCESS[proto]
    rule = manila.grant(share.id, access_type, access_to)
    assert (rule.access_type, rule.access_to, rule.access_level, rule.state) == (
        access_type, access_to, "rw", "active")
    if access_type == "cephx":
        assert_cephx_key(rule.access_key)
    else:
        assert rule.access_key is None
    # Asking again for the same client reuses the rule (Manila refuses a twin).
    again = manila.grant(share.id, access_type, access_to)
    assert (again.id, again.access_key) == (rule.id, rule.access_key)
    assert [r.id for r in manila.rules(share.id)] == [rule.id]

    manila.revoke(share.id, rule.id)
    assert manila.rules(share.id) == []

    manila.delete(share)
    with pytest.raises(NotFound):
        manila.get(share.id)
    assert manila.find(name) is None
    if directory is not None:
        assert not directory.exists()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_access_the_driver_refuses_ends_in_error(manila, proto):
    share = manila.create(ShareSpec(name=unique_name(proto), size_gb=1, proto=proto))
    wrong_type, wrong_to = ACCESS[proto][2]
    with pytest.raises(CloudError, match=r"rule state 'error'"):
        manila.grant(share.id, wrong_type, wrong_to)
    [failed] = manila.rules(share.id)
    assert (failed.access_type, failed.access_to, failed.state) == (wrong_type, wrong_to, "error")
    # A rule in error does not block new ones (Manila >= 2.28, the SDK's version).
    access_type, access_to, _ = ACCESS[proto]
    good = manila.grant(share.id, access_type, access_to)
    assert good.state == "active"
    manila.revoke(share.id, failed.id)
    assert [r.id for r in manila.rules(share.id)] == [good.id]
    manila.delete(share)


def test_protocol_specific_refusals(manila):
    """GlusterFS native is read-write only; CephFS refuses manila's own cephx id."""
    gluster = manila.create(ShareSpec(name=unique_name("GLUSTERFS"), size_gb=1, proto="GLUSTERFS"))
    with pytest.raises(CloudError, match=r"rule state 'error'"):
        manila.grant(gluster.id, "cert", "reader.example.com", access_level="ro")
    ceph = manila.create(ShareSpec(name=unique_name("CEPHFS"), size_gb=1, proto="CEPHFS"))
    with pytest.raises(CloudError, match=r"rule state 'error'"):
        manila.grant(ceph.id, "cephx", "manila")
    readonly = manila.grant(ceph.id, "cephx", "reader", access_level="ro")
    assert readonly.access_level == "ro"
    assert_cephx_key(readonly.access_key)
    # Every cephx client gets its own secret.
    other = manila.grant(ceph.id, "cephx", "writer")
    assert other.access_key != readonly.access_key
    manila.delete(gluster)
    manila.delete(ceph)  # rules, even those in error, go with the share


@pytest.mark.parametrize("access_type,access_to", [
    ("ip", "10.0.0.300"),
    ("cephx", "client.alice"),  # a period: Manila wants the bare id
    ("cert", "x" * 65),         # a CN has at most 64 characters
])
def test_invalid_access_to_is_a_conflict_naming_it(manila, access_type, access_to):
    share = manila.create(ShareSpec(name=unique_name("NFS"), size_gb=1, proto="NFS"))
    with pytest.raises(Conflict) as refused:
        manila.grant(share.id, access_type, access_to)
    assert repr(access_to) in str(refused.value)
    assert manila.rules(share.id) == []
    manila.delete(share)


def test_unknown_share_is_not_found(manila):
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound):
        manila.get(missing)
    with pytest.raises(NotFound):
        manila.export_locations(missing)
    with pytest.raises(NotFound):
        manila.rules(missing)
    with pytest.raises(NotFound):
        manila.grant(missing, "ip", "10.0.0.1")
    with pytest.raises(NotFound):
        manila.revoke(missing, str(uuid.uuid4()))
    # Deleting what is already gone is done at once.
    manila.delete(CloudShare(id=missing, name="gone", size_gb=1, status="available", proto="NFS",
                             created_at=None))


def test_adopt_and_give_back_round_trip_name_and_metadata(cloud, manila):
    theirs = manila.create(ShareSpec(name=unique_name("NFS"), size_gb=1, proto="NFS"))
    # Make it look like someone else's share: no fuxi metadata.
    cloud.sdk.shared_file_system.delete_share_metadata(theirs.id, [OWNER_KEY])
    assert not manila.get(theirs.id).owned

    adopted = manila.adopt(theirs.id, "fuxi-name")
    assert (adopted.name, adopted.owned, adopted.adopted) == ("fuxi-name", True, True)
    assert manila.find("fuxi-name").id == theirs.id
    assert manila.adopt(theirs.id, "fuxi-name").id == theirs.id  # again: the same
    with pytest.raises(Conflict):
        manila.adopt(theirs.id, "another-name")

    manila.give_back(adopted)
    back = manila.get(theirs.id)
    assert (back.name, back.metadata, back.status) == (theirs.name, {}, "available")
    assert manila.find("fuxi-name") is None
    manila.delete(back)


def test_untag_forgets_a_share_fuxi_made_without_deleting_it(cloud, manila):
    made = manila.create(ShareSpec(name=unique_name("NFS"), size_gb=1, proto="NFS"))
    manila.untag(made)
    kept = manila.get(made.id)
    assert (kept.name, kept.owned, kept.status) == (made.name, False, "available")
    assert made.id not in {s.id for s in manila.list_owned()}
    manila.delete(kept)

