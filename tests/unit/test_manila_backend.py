"""ManilaBackend against a stub of openstacksdk's shared_file_system proxy."""

from types import SimpleNamespace

import pytest
from openstack import exceptions as sdk_exceptions

from storage_core.backends.manila import ManilaBackend
from storage_core.errors import CloudError, Conflict, NotFound
from storage_core.fakes import FakeClock
from storage_core.models import ShareSpec


class StubShares:
    def __init__(self):
        self.by_id = {}
        self.rules = {}
        self.calls = []
        self.rule_state_after = "active"
        self.refuse_rule_listing = False

    def _share(self, **kw):
        base = dict(size=1, status="available", share_protocol="NFS", created_at="2026-11-26T20:00:00.000000",
                    metadata={}, share_type=None, share_type_name="default", availability_zone="nova")
        base.update(kw)
        return SimpleNamespace(**base)

    def shares(self, details=True, name=None):
        return [s for s in self.by_id.values() if name is None or s.name == name]

    def get_share(self, share_id):
        if share_id not in self.by_id:
            raise sdk_exceptions.NotFoundException(f"Share {share_id} could not be found.")
        share = self.by_id[share_id]
        if share.status == "creating":
            share.status = "available"  # one poll later it is there
        return share

    def create_share(self, **attrs):
        self.calls.append(("create", attrs))
        share = self._share(id=f"s{len(self.by_id) + 1}", name=attrs["name"], size=attrs["size"],
                            share_protocol=attrs["share_proto"], metadata=attrs["metadata"], status="creating")
        self.by_id[share.id] = share
        return share

    def delete_share(self, share_id, ignore_missing=True):
        self.calls.append(("delete", share_id))
        self.by_id.pop(share_id, None)

    def access_rules(self, share_id):
        if share_id not in self.by_id or self.refuse_rule_listing:
            # What Manila answers for a share it does not know (and a stand-in
            # for any other refusal of the listing).
            raise sdk_exceptions.BadRequestException(f"Share {share_id} not found.")
        return [r for r in self.rules.values() if r.share_id == share_id]

    def create_access_rule(self, share_id, **attrs):
        self.calls.append(("grant", share_id, attrs))
        rule = SimpleNamespace(id=f"r{len(self.rules) + 1}", share_id=share_id, state=self.rule_state_after,
                               access_key="QUJDREVGR0hJSktMTU5PUA==" if attrs["access_type"] == "cephx" else None,
                               **attrs)
        self.rules[rule.id] = rule
        return SimpleNamespace(**{**rule.__dict__, "state": "queued_to_apply", "access_key": None})

    def delete_access_rule(self, rule_id, share_id, ignore_missing=True):
        self.calls.append(("revoke", rule_id))
        self.rules.pop(rule_id, None)

    def export_locations(self, share_id):
        return [SimpleNamespace(path="10.0.0.1:/admin", is_preferred=False, is_admin=True),
                SimpleNamespace(path="10.0.0.2:/other", is_preferred=False, is_admin=False),
                SimpleNamespace(path="10.0.0.3:/best", is_preferred=True, is_admin=False)]


@pytest.fixture
def parts():
    stub = StubShares()
    backend = ManilaBackend(SimpleNamespace(shared_file_system=stub), clock=FakeClock())
    return backend, stub


def test_create_tags_waits_and_finds(parts):
    backend, stub = parts
    share = backend.create(ShareSpec("data", 2, "GLUSTERFS", share_type="gold"))
    assert share.status == "available" and share.owned and share.proto == "GLUSTERFS"
    assert stub.calls[0][1]["metadata"] == {"volume_from": "fuxi"} and stub.calls[0][1]["share_type"] == "gold"
    assert backend.find("data").id == share.id and backend.find("nothing") is None
    assert [s.name for s in backend.list_owned()] == ["data"]


def test_duplicate_names_are_a_conflict(parts):
    backend, stub = parts
    for i in (1, 2):
        stub.by_id[f"x{i}"] = stub._share(id=f"x{i}", name="twin")
    with pytest.raises(Conflict, match="2 shares named 'twin'"):
        backend.find("twin")


def test_grant_waits_for_active_and_reuses_an_equal_rule(parts):
    backend, stub = parts
    share = backend.create(ShareSpec("c", 1, "CEPHFS"))
    rule = backend.grant(share.id, "cephx", "fuxi-host1")
    assert rule.state == "active" and rule.access_key
    again = backend.grant(share.id, "cephx", "fuxi-host1")
    assert again.id == rule.id and [c[0] for c in stub.calls].count("grant") == 1
    backend.revoke(share.id, rule.id)
    assert backend.rules(share.id) == []


def test_a_rule_in_error_is_a_clear_cloud_error(parts):
    backend, stub = parts
    stub.rule_state_after = "error"
    share = backend.create(ShareSpec("n", 1, "NFS"))
    with pytest.raises(CloudError, match="could not apply ip access"):
        backend.grant(share.id, "ip", "10.1.2.3")


def test_rules_of_an_unknown_share_are_not_found(parts):
    backend, stub = parts
    for call in (lambda: backend.rules("gone"), lambda: backend.grant("gone", "ip", "10.1.2.3"),
                 lambda: backend.revoke("gone", "r1")):
        with pytest.raises(NotFound):
            call()
    share = backend.create(ShareSpec("n", 1, "NFS"))
    stub.refuse_rule_listing = True  # a 400 for a share that exists stays a cloud error
    with pytest.raises(CloudError, match="listing access rules"):
        backend.rules(share.id)


def test_export_locations_preferred_first_admin_only_left_out(parts):
    backend, _ = parts
    share = backend.create(ShareSpec("e", 1, "NFS"))
    assert [e.path for e in backend.export_locations(share.id)] == ["10.0.0.3:/best", "10.0.0.2:/other"]


def test_delete_waits_until_gone(parts):
    backend, stub = parts
    share = backend.create(ShareSpec("d", 1, "NFS"))
    backend.delete(share)
    assert share.id not in stub.by_id
