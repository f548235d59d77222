"""CinderBackend's pool primitives against a stub of openstacksdk's block_storage proxy.

The stub answers as Cinder 29 does (tests/functional/test_cloud_conformance.py
pins the same behaviour on the real thing): a reservation is an attachment
without a connector that only an ``available`` volume gets, a 404 for a
missing metadata key reads like the one for a missing volume, and listings
come in pages with a ``next`` link.
"""

import json
import uuid
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from openstack import exceptions as sdk_exceptions

from storage_core.backends.cinder import CinderBackend
from storage_core.errors import CloudError, Conflict, NotFound
from storage_core.fakes import FakeClock
from storage_core.models import OWNER_KEY, OWNER_VALUE, POOL_KEY


def _http_error(cls, status, details):
    exc = cls(message=f"{cls.__name__}: {status}", details=details)
    exc.status_code = status  # as from a response; the http_status argument is deprecated
    return exc


def _bad_request(message):
    return _http_error(sdk_exceptions.BadRequestException, 400, message)


def _not_found(message):
    return _http_error(sdk_exceptions.NotFoundException, 404, message)


class StubBlockStorage:
    def __init__(self, page_size=1000):
        self.by_id = {}
        self.attachments = {}
        self.calls = []
        self.page_size = page_size

    def add(self, name, status="available", metadata=None, attachments=()):
        vol = SimpleNamespace(id=str(uuid.uuid4()), name=name, size=1, status=status,
                              created_at="2026-11-27T01:18:56.241907", metadata=dict(metadata or {}),
                              volume_type="local", availability_zone="nova",
                              attachments=list(attachments), is_multiattach=False)
        self.by_id[vol.id] = vol
        return vol

    def _volume(self, volume_id):
        if volume_id not in self.by_id:
            raise _not_found(f"Volume {volume_id} could not be found.")
        return self.by_id[volume_id]

    # -- what CinderBackend calls ----------------------------------------

    def get_volume(self, volume_id):
        self.calls.append(("get_volume", volume_id))
        return self._volume(volume_id)

    def get(self, path, params=None):
        """A raw GET of /volumes/detail: one page, Cinder's JSON."""
        self.calls.append(("GET", path, dict(params or {})))
        assert path == "/volumes/detail"
        params = dict(params or {})
        vols = sorted(self.by_id.values(), key=lambda v: v.id)
        if "metadata" in params:
            wanted = json.loads(params["metadata"])
            vols = [v for v in vols if all(v.metadata.get(k) == x for k, x in wanted.items())]
        if "marker" in params:
            ids = [v.id for v in vols]
            vols = vols[ids.index(params["marker"]) + 1:]
        limit = min(int(params.get("limit", self.page_size)), self.page_size)
        page = vols[:limit]
        body = {"volumes": [{"id": v.id, "name": v.name, "size": v.size, "status": v.status,
                             "created_at": v.created_at, "metadata": dict(v.metadata),
                             "volume_type": v.volume_type, "availability_zone": v.availability_zone,
                             "attachments": list(v.attachments), "multiattach": v.is_multiattach}
                            for v in page]}
        if len(vols) > limit:
            query = urlencode({**params, "marker": page[-1].id})
            body["volumes_links"] = [{"rel": "next",
                                      "href": f"http://cinder/v3/p/volumes/detail?{query}"}]
        return SimpleNamespace(status_code=200, json=lambda: body)

    def create_attachment(self, volume_id, **attrs):
        self.calls.append(("create_attachment", volume_id, attrs))
        vol = self._volume(volume_id)
        if vol.status not in ("available", "downloading"):
            raise _bad_request(
                f"Invalid volume: Volume {volume_id} status must be available or downloading to "
                f"reserve, but the current status is {vol.status}.")
        att = SimpleNamespace(id=str(uuid.uuid4()), status="reserved", volume_id=volume_id,
                              connection_info={}, attach_mode="null")
        self.attachments[att.id] = att
        vol.status = "reserved"
        return att

    def delete_attachment(self, attachment_id, ignore_missing=True):
        self.calls.append(("delete_attachment", attachment_id, ignore_missing))
        att = self.attachments.pop(attachment_id, None)
        if att is None:
            if not ignore_missing:
                raise _not_found(f"Volume attachment could not be found with filter: "
                                 f"attachment_id = {attachment_id}.")
            return
        self.by_id[att.volume_id].status = "available"

    def update_volume(self, volume_id, **attrs):
        self.calls.append(("update_volume", volume_id, attrs))
        vol = self._volume(volume_id)
        if len(attrs.get("name") or "") > 255:
            raise _bad_request(f"Invalid input received: name has {len(attrs['name'])} characters, "
                               "more than 255.")
        vol.name = attrs.get("name", vol.name)
        if "metadata" in attrs:
            vol.metadata = dict(attrs["metadata"])  # replaces it all, as Cinder's volume update does
        return vol

    def set_volume_metadata(self, volume_id, **metadata):
        self.calls.append(("set_volume_metadata", volume_id, metadata))
        vol = self._volume(volume_id)
        vol.metadata.update(metadata)
        return vol

    def delete_volume_metadata(self, volume_id, keys=None):
        self.calls.append(("delete_volume_metadata", volume_id, list(keys)))
        vol = self._volume(volume_id)
        for key in keys:
            if key not in vol.metadata:
                # Cinder's words; the status is the one a missing volume gets.
                raise _not_found(f"Volume {volume_id} has no metadata with key {key}.")
            del vol.metadata[key]


@pytest.fixture
def parts():
    stub = StubBlockStorage()
    backend = CinderBackend(SimpleNamespace(block_storage=stub), clock=FakeClock())
    return backend, stub


# -- reserve / release -------------------------------------------------------

def test_reserve_is_an_attachment_without_connector(parts):
    backend, stub = parts
    vol = stub.add("fuxi-pool-1")
    attachment_id = backend.reserve(vol.id)
    assert stub.calls == [("create_attachment", vol.id, {})]  # no connector, no instance, no mode
    assert stub.attachments[attachment_id].volume_id == vol.id
    assert backend.get(vol.id).status == "reserved"


def test_a_second_reservation_is_a_conflict_saying_the_volume_is_taken(parts):
    backend, stub = parts
    vol = stub.add("fuxi-pool-1")
    backend.reserve(vol.id)
    with pytest.raises(Conflict) as err:
        backend.reserve(vol.id)
    assert f"volume {vol.id} is taken" in str(err.value)
    assert "the current status is reserved" in str(err.value)  # Cinder's own words kept


@pytest.mark.parametrize("status", ["in-use", "attaching", "creating", "error", "deleting"])
def test_reserving_a_volume_not_available_is_a_conflict(parts, status):
    backend, stub = parts
    vol = stub.add("v", status=status)
    with pytest.raises(Conflict, match="is taken"):
        backend.reserve(vol.id)


def test_reserving_a_missing_volume_is_not_found(parts):
    backend, _ = parts
    with pytest.raises(NotFound):
        backend.reserve(str(uuid.uuid4()))


def test_other_cloud_failures_of_reserve_are_cloud_errors(parts):
    backend, stub = parts
    vol = stub.add("v")

    def broken(volume_id, **attrs):
        raise _http_error(sdk_exceptions.HttpException, 500, "Internal error")

    stub.create_attachment = broken
    with pytest.raises(CloudError, match="HTTP 500"):
        backend.reserve(vol.id)


def test_release_makes_the_volume_available_and_ignores_missing_reservations(parts):
    backend, stub = parts
    vol = stub.add("v")
    attachment_id = backend.reserve(vol.id)
    backend.release(attachment_id)
    assert backend.get(vol.id).status == "available"
    backend.release(attachment_id)  # already gone: fine
    assert stub.calls[-1] == ("delete_attachment", attachment_id, True)


# -- rename_and_replace_metadata / update_metadata -----------------------------------------------

def test_rename_and_replace_metadata_is_one_volume_update(parts):
    backend, stub = parts
    vol = stub.add("fuxi-pool-1", status="reserved",
                   metadata={POOL_KEY: "warm", "fuxi_pool_state": "ready", OWNER_KEY: OWNER_VALUE})
    answer = backend.rename_and_replace_metadata(vol.id, "docker-name", {OWNER_KEY: OWNER_VALUE, "fstype": "ext4"})
    assert stub.calls == [("update_volume", vol.id, {"name": "docker-name",
                                                     "metadata": {OWNER_KEY: OWNER_VALUE, "fstype": "ext4"}})]
    # The answer is the volume: new name and metadata, the status it had.
    assert (answer.id, answer.name, answer.status) == (vol.id, "docker-name", "reserved")
    assert answer.metadata == {OWNER_KEY: OWNER_VALUE, "fstype": "ext4"}
    assert backend.get(vol.id) == answer


def test_rename_and_replace_metadata_sends_every_key_left_and_no_admin_keys(parts):
    backend, stub = parts
    vol = stub.add("fuxi-pool-1", metadata={"a": "1", "attached_mode": "rw", "readonly": "False"})
    # Cinder shows admin metadata among the volume's; sent back it would become the user's.
    backend.rename_and_replace_metadata(vol.id, "n", {"a": "1", "attached_mode": "rw", "readonly": "False"})
    assert stub.calls[-1] == ("update_volume", vol.id, {"name": "n", "metadata": {"a": "1"}})
    backend.rename_and_replace_metadata(vol.id, "n", {})  # nothing kept: an empty dict, sent
    assert stub.calls[-1] == ("update_volume", vol.id, {"name": "n", "metadata": {}})
    assert backend.get(vol.id).metadata == {}


def test_rename_and_replace_metadata_refused_is_a_conflict_and_missing_is_not_found(parts):
    backend, stub = parts
    vol = stub.add("v", metadata={"a": "1"})
    with pytest.raises(Conflict, match=f"refused to rename volume {vol.id} to 'xxx.*' and replace its "
                                       "metadata.*more than 255"):
        backend.rename_and_replace_metadata(vol.id, "x" * 256, {})
    assert backend.get(vol.id).metadata == {"a": "1"}
    with pytest.raises(NotFound):
        backend.rename_and_replace_metadata(str(uuid.uuid4()), "n", {})


def test_update_metadata_sets_then_deletes(parts):
    backend, stub = parts
    vol = stub.add("v", metadata={POOL_KEY: "warm", "fuxi_pool_state": "ready", "keep": "1"})
    backend.update_metadata(vol.id, {OWNER_KEY: OWNER_VALUE, "fstype": "ext4"}, [POOL_KEY, "fuxi_pool_state"])
    assert backend.get(vol.id).metadata == {OWNER_KEY: OWNER_VALUE, "fstype": "ext4", "keep": "1"}
    assert [c[0] for c in stub.calls[:3]] == ["set_volume_metadata", "delete_volume_metadata",
                                              "delete_volume_metadata"]


def test_update_metadata_ignores_keys_already_gone(parts):
    backend, stub = parts
    vol = stub.add("v", metadata={"a": "1"})
    backend.update_metadata(vol.id, {}, ["nokey", "a"])
    assert backend.get(vol.id).metadata == {}
    assert not any(c[0] == "set_volume_metadata" for c in stub.calls)  # nothing to set, no call


def test_update_metadata_of_a_missing_volume_is_not_found(parts):
    backend, _ = parts
    with pytest.raises(NotFound):
        backend.update_metadata(str(uuid.uuid4()), {}, ["a"])  # only deletions: still noticed
    with pytest.raises(NotFound):
        backend.update_metadata(str(uuid.uuid4()), {"a": "1"}, [])


def test_update_metadata_refused_is_a_conflict(parts):
    backend, stub = parts
    vol = stub.add("v")

    def refuse(volume_id, **metadata):
        raise _bad_request("Invalid volume: Updating volume metadata is not allowed for volumes in "
                           "maintenance status.")

    stub.set_volume_metadata = refuse
    with pytest.raises(Conflict, match=f"metadata of volume {vol.id}.*maintenance"):
        backend.update_metadata(vol.id, {"a": "1"}, [])


# -- listings ------------------------------------------------------------------

def test_list_tagged_filters_on_key_and_value(parts):
    backend, stub = parts
    warm = stub.add("fuxi-pool-a", metadata={POOL_KEY: "warm"})
    cold = stub.add("fuxi-pool-b", metadata={POOL_KEY: "cold"})
    stub.add("plain", metadata={"other": "x"})
    assert {v.id for v in backend.list_tagged(POOL_KEY)} == {warm.id, cold.id}
    assert [v.id for v in backend.list_tagged(POOL_KEY, "warm")] == [warm.id]
    assert backend.list_tagged(POOL_KEY, "none") == []
    assert backend.list_tagged("absent") == []


def test_list_tagged_checks_tags_itself_when_the_cloud_ignores_the_filter(parts):
    backend, stub = parts
    stub.add("a", metadata={POOL_KEY: "warm"})
    stub.add("b", metadata={POOL_KEY: "cold"})
    real_get = stub.get
    stub.get = lambda path, params=None: real_get(path, {k: v for k, v in (params or {}).items()
                                                         if k != "metadata"})
    assert [v.name for v in backend.list_tagged(POOL_KEY, "warm")] == ["a"]


def test_list_owned_leaves_out_pool_volumes(parts):
    backend, stub = parts
    mine = stub.add("mine", metadata={OWNER_KEY: OWNER_VALUE, "fstype": "ext4"})
    stub.add("pooled", metadata={OWNER_KEY: OWNER_VALUE, "fstype": "ext4", POOL_KEY: "warm"})
    stub.add("half-claimed", metadata={OWNER_KEY: OWNER_VALUE, POOL_KEY: "warm"})
    stub.add("someone-elses", metadata={})
    assert [v.id for v in backend.list_owned()] == [mine.id]


def test_listings_follow_every_page(parts):
    backend, stub = parts
    stub.page_size = 3
    made = {stub.add(f"v{i}", metadata={POOL_KEY: "p"}).id for i in range(10)}
    listed = backend.list_tagged(POOL_KEY)
    assert {v.id for v in listed} == made and len(listed) == 10
    gets = [c for c in stub.calls if c[0] == "GET"]
    assert len(gets) == 4
    assert "marker" not in gets[0][2] and all("marker" in c[2] for c in gets[1:])
    assert "metadata" not in gets[0][2]  # a key alone: Cinder cannot filter on that


def test_listings_let_cinder_filter_on_a_whole_tag(parts):
    backend, stub = parts
    backend.list_tagged(POOL_KEY, "warm")
    backend.list_owned()
    [tagged, owned] = [c[2] for c in stub.calls if c[0] == "GET"]
    assert json.loads(tagged["metadata"]) == {POOL_KEY: "warm"}
    assert json.loads(owned["metadata"]) == {OWNER_KEY: OWNER_VALUE}


def test_listed_volumes_carry_everything_get_gives(parts):
    backend, stub = parts
    vol = stub.add("v", status="in-use", metadata={OWNER_KEY: OWNER_VALUE},
                   attachments=[{"id": "vol", "attachment_id": "att-1", "host_name": None,
                                 "server_id": "srv"}])
    [listed] = backend.list_owned()
    assert listed == backend.get(vol.id)
    assert listed.attachments[0].attachment_id == "att-1" and listed.attachments[0].server_id == "srv"


def test_listing_failures_are_cloud_errors(parts):
    backend, stub = parts

    def broken(path, params=None):
        raise _http_error(sdk_exceptions.HttpException, 503, "unavailable")

    stub.get = broken
    with pytest.raises(CloudError, match="listing volumes tagged 'fuxi_pool'"):
        backend.list_tagged(POOL_KEY)
    with pytest.raises(CloudError, match="listing fuxi volumes"):
        backend.list_owned()
