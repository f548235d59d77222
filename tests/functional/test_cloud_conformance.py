"""Cinder behaviour fuxi relies on, pinned on both clouds.

Each assertion was first observed on real Cinder 29 (contrib/realcloud); the
same test runs on devcloud so the emulator cannot drift from it.
"""

import json
import uuid


# Cinder's own behaviour: the attach path fuxi takes does not matter here.
CLOUD_KINDS = ("devcloud", "realcloud")

CONNECTOR = {"platform": "x86_64", "os_type": "linux", "ip": "127.0.0.1", "host": "conformance",
             "multipath": False, "enforce_multipath": False, "do_local_attach": False}
DELETE_REFUSED = (
    "Invalid volume: Volume status must be available or error or error_restoring or error_extending "
    "or error_managing and must not be migrating, attached, belong to a group, have snapshots, "
    "awaiting a transfer, or be disassociated from snapshots after volume transfer."
)


def raw(cloud, method, path, microversion="3.0", **kwargs):
    bs = cloud.sdk.block_storage
    resp = bs.request(path, method, microversion=microversion, raise_exc=False, **kwargs)
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    return resp.status_code, body


def new_volume(cloud, name, **attrs):
    bs = cloud.sdk.block_storage
    vol = bs.create_volume(name=name, size=1, **attrs)
    return bs.wait_for_status(vol, "available", interval=0.1, wait=60)


def test_missing_things_answer_cinder_shaped_404s(cloud):
    missing = str(uuid.uuid4())
    assert raw(cloud, "GET", f"/volumes/{missing}") == (
        404, {"itemNotFound": {"code": 404, "message": f"Volume {missing} could not be found."}})
    assert raw(cloud, "DELETE", f"/volumes/{missing}") == (
        404, {"itemNotFound": {"code": 404, "message": f"Volume {missing} could not be found."}})
    message = f"Volume attachment could not be found with filter: attachment_id = {missing}."
    assert raw(cloud, "GET", f"/attachments/{missing}", "3.27") == (
        404, {"itemNotFound": {"code": 404, "message": message}})
    assert raw(cloud, "DELETE", f"/attachments/{missing}", "3.27") == (
        404, {"itemNotFound": {"code": 404, "message": message}})


def test_attachments_need_microversion_3_27(cloud):
    vol = new_volume(cloud, "mv")
    body = {"attachment": {"volume_uuid": vol.id, "connector": CONNECTOR}}
    assert raw(cloud, "POST", "/attachments", "3.0", json=body) == (
        404, {"itemNotFound": {"code": 404, "message": "The resource could not be found."}})
    status, answer = raw(cloud, "POST", "/attachments", "3.27",
                         json={"attachment": {"volume_uuid": vol.id, "instance_uuid": None}})
    assert status == 400 and "instance_uuid" in answer["badRequest"]["message"]
    assert cloud.sdk.block_storage.get_volume(vol.id).status == "available"


def test_attach_status_sequence_and_connection_info_shape(cloud):
    bs = cloud.sdk.block_storage
    vol = new_volume(cloud, "seq")
    att = bs.create_attachment(vol.id, connector=CONNECTOR, mode="rw")
    assert att.status == "reserved"  # the create's own answer
    info = att.connection_info
    assert info["driver_volume_type"] == "local" and "data" not in info
    assert info["device_path"].startswith("/dev/loop") and info["attachment_id"] == att.id
    assert info["access_mode"] == "rw"
    assert bs.get_attachment(att.id).status == "attaching"
    vol = bs.get_volume(vol.id)
    assert vol.status == "attaching" and vol.attachments == []
    assert raw(cloud, "DELETE", f"/volumes/{vol.id}") == (400, {"badRequest": {"code": 400, "message": DELETE_REFUSED}})

    status, answer = raw(cloud, "POST", "/attachments", "3.44",
                         json={"attachment": {"volume_uuid": vol.id, "connector": CONNECTOR}})
    assert status == 400
    assert answer["badRequest"]["message"] == (
        f"Invalid volume: Volume {vol.id} status must be available or downloading to reserve, "
        "but the current status is attaching.")

    bs.complete_attachment(att.id)
    assert bs.get_attachment(att.id).status == "attached"
    vol = bs.get_volume(vol.id)
    assert vol.status == "in-use"
    [entry] = vol.attachments
    assert entry["attachment_id"] == att.id and entry["id"] == vol.id and entry["volume_id"] == vol.id
    assert entry["server_id"] is None and entry["host_name"] is None and entry["device"] == "na"
    assert raw(cloud, "DELETE", f"/volumes/{vol.id}") == (400, {"badRequest": {"code": 400, "message": DELETE_REFUSED}})

    bs.delete_attachment(att.id)
    assert bs.get_volume(vol.id).status == "available"


def test_list_filters(cloud):
    a = new_volume(cloud, "flt-a", metadata={"k": "v"})
    new_volume(cloud, "flt-b")

    def names(query, microversion="3.0"):
        status, body = raw(cloud, "GET", f"/volumes/detail?{query}", microversion)
        return status, sorted(v["name"] for v in body["volumes"]) if status == 200 else body

    assert names("name=flt-a") == (200, ["flt-a"])
    assert names("name=flt") == (200, [])  # exact, not a prefix
    from urllib.parse import quote

    assert names("metadata=" + quote(json.dumps({"k": "v"}))) == (200, ["flt-a"])
    assert names("metadata=" + quote(str({"k": "v"}))) == (200, ["flt-a"])
    assert names("metadata=" + quote(json.dumps({"k": "nomatch"}))) == (200, [])
    assert names("bogus=1", "3.34") == (
        400, {"badRequest": {"code": 400, "message": "Invalid filters bogus are found in query options."}})
    assert a.metadata == {"k": "v"}


def test_bad_size_is_a_cinder_400(cloud):
    status, body = raw(cloud, "POST", "/volumes", json={"volume": {"name": "zero", "size": 0}})
    assert status == 400
    assert body["badRequest"]["message"].startswith("Invalid input for field/attribute size. Value: 0.")


# -- the warm pool's primitives: reservation, rename, metadata, listings ------

POOL_TAGS = {"volume_from": "fuxi", "fstype": "ext4", "fuxi_pool": "warm", "fuxi_pool_state": "ready"}


def backend_of(cloud, connection=None):
    from storage_core.backends.cinder import CinderBackend

    return CinderBackend(connection or cloud.sdk)


def another_host(cloud):
    """A second connection of its own (token, session): another host on the same cloud."""
    from tests.clouds import connect

    return connect(cloud.clouds_yaml, cloud.cloud_name)


def reserve_refused(volume_id, status):
    return (400, {"badRequest": {"code": 400, "message": (
        f"Invalid volume: Volume {volume_id} status must be available or downloading to reserve, "
        f"but the current status is {status}.")}})


def test_a_reservation_takes_the_volume_until_released(cloud):
    from storage_core.errors import Conflict

    bs = cloud.sdk.block_storage
    backend = backend_of(cloud)
    vol = new_volume(cloud, "fuxi-pool-res", metadata=POOL_TAGS)
    reservation = backend.reserve(vol.id)

    # The attachment: reserved, no connection, mode "null" (none was given).
    status, body = raw(cloud, "GET", f"/attachments/{reservation}", "3.27")
    assert status == 200 and body["attachment"] == {
        "id": reservation, "status": "reserved", "instance": None, "volume_id": vol.id,
        "attached_at": "", "detached_at": "", "attach_mode": "null", "connection_info": {}}
    # The volume: reserved, and the reservation is no attachment the volume shows.
    seen = backend.get(vol.id)
    assert seen.status == "reserved" and seen.attachments == ()
    assert bs.get_volume(vol.id).attachments == []
    assert [a.id for a in cloud.attachments_of(vol.id)] == [reservation]

    # Nobody else gets it, in Cinder's words, whatever the microversion.
    for microversion in ("3.27", "3.54", "3.71"):
        assert raw(cloud, "POST", "/attachments", microversion,
                   json={"attachment": {"volume_uuid": vol.id}}) == reserve_refused(vol.id, "reserved")
    try:
        backend.reserve(vol.id)
    except Conflict as exc:
        assert f"volume {vol.id} is taken" in str(exc) and "current status is reserved" in str(exc)
    else:
        raise AssertionError("a second reservation was granted")
    # Nor is a reserved volume deleted.
    assert raw(cloud, "DELETE", f"/volumes/{vol.id}") == (400, {"badRequest": {"code": 400, "message": DELETE_REFUSED}})

    backend.release(reservation)
    assert backend.get(vol.id).status == "available"
    assert cloud.attachments_of(vol.id) == []
    backend.release(reservation)  # gone already: no error
    assert raw(cloud, "DELETE", f"/attachments/{reservation}", "3.27")[0] == 404
    # Free again: the next one may take it.
    backend.release(backend.reserve(vol.id))


def test_of_hosts_reserving_at_once_exactly_one_wins(cloud):
    import threading

    from storage_core.errors import Conflict

    hosts = [backend_of(cloud, another_host(cloud)) for _ in range(4)]
    for round_ in range(3):
        vol = new_volume(cloud, f"fuxi-pool-race{round_}", metadata=POOL_TAGS)
        barrier = threading.Barrier(len(hosts))
        won, lost, failed = [], [], []

        def contend(backend):
            barrier.wait()
            try:
                won.append(backend.reserve(vol.id))
            except Conflict as exc:
                lost.append(str(exc))
            except Exception as exc:  # noqa: BLE001 (reported below)
                failed.append(exc)

        threads = [threading.Thread(target=contend, args=(h,)) for h in hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failed, failed
        assert len(won) == 1 and len(lost) == len(hosts) - 1
        assert all(f"volume {vol.id} is taken" in message for message in lost)
        assert [a.id for a in cloud.attachments_of(vol.id)] == won
        hosts[0].release(won[0])
        assert hosts[0].get(vol.id).status == "available"


def test_what_an_in_use_or_missing_volume_answers_a_reservation(cloud):
    from storage_core.errors import Conflict, NotFound

    bs = cloud.sdk.block_storage
    backend = backend_of(cloud)
    vol = new_volume(cloud, "inuse")
    att = bs.create_attachment(vol.id, connector=CONNECTOR, mode="rw")
    bs.complete_attachment(att.id)
    assert raw(cloud, "POST", "/attachments", "3.27",
               json={"attachment": {"volume_uuid": vol.id}}) == reserve_refused(vol.id, "in-use")
    try:
        backend.reserve(vol.id)
    except Conflict as exc:
        assert "is taken" in str(exc)
    else:
        raise AssertionError("an in-use volume was reserved")
    bs.delete_attachment(att.id)

    missing = str(uuid.uuid4())
    assert raw(cloud, "POST", "/attachments", "3.27", json={"attachment": {"volume_uuid": missing}}) == (
        404, {"itemNotFound": {"code": 404, "message": f"Volume {missing} could not be found."}})
    try:
        backend.reserve(missing)
    except NotFound:
        pass
    else:
        raise AssertionError("reserving a missing volume did not say so")


def test_a_reserved_volume_may_be_renamed_and_retagged(cloud):
    backend = backend_of(cloud)
    vol = new_volume(cloud, "fuxi-pool-claim", metadata=POOL_TAGS)
    reservation = backend.reserve(vol.id)
    before = raw(cloud, "GET", f"/volumes/{vol.id}")[1]["volume"]

    # The PUT's own answer: Cinder's detail view of the volume as it read it
    # before saving (old updated_at), without the extension attributes, name
    # stripped of surrounding blanks.
    status, body = raw(cloud, "PUT", f"/volumes/{vol.id}", json={"volume": {"name": "  claimed  "}})
    assert status == 200
    answer = body["volume"]
    assert answer["name"] == "claimed" and answer["status"] == "reserved"
    assert answer["updated_at"] == before["updated_at"] and answer["metadata"] == POOL_TAGS
    assert "os-vol-tenant-attr:tenant_id" not in answer and "os-vol-tenant-attr:tenant_id" in before
    assert {k for k in answer if not k.startswith("os-vol-")} == {k for k in before if not k.startswith("os-vol-")}

    cloud.sdk.block_storage.update_volume(vol.id, name="docker-name")
    backend.update_metadata(vol.id, {"fstype": "xfs"}, ["fuxi_pool", "fuxi_pool_state", "never-there"])
    seen = backend.get(vol.id)
    assert seen.name == "docker-name" and seen.status == "reserved"
    assert dict(seen.metadata) == {"volume_from": "fuxi", "fstype": "xfs"}

    backend.release(reservation)
    seen = backend.get(vol.id)
    assert seen.status == "available" and seen.name == "docker-name"
    assert raw(cloud, "DELETE", f"/volumes/{vol.id}/metadata/never-there") == (404, {"itemNotFound": {
        "code": 404, "message": f"Volume {vol.id} has no metadata with key never-there."}})


def test_volume_update_validation(cloud):
    vol = new_volume(cloud, "upd", metadata={"a": "1"})
    url = f"/volumes/{vol.id}"

    def put(body, microversion="3.0"):
        status, answer = raw(cloud, "PUT", url, microversion, json=body)
        return status, answer["badRequest"]["message"] if status == 400 else answer["volume"]

    def invalid(field, value, reason):
        return 400, f"Invalid input for field/attribute {field}. Value: {value}. {reason}"

    assert put({"volume": {"name": "x" * 256}}) == (400, "Invalid input received: name has 256 characters, more than 255.")
    assert put({"volume": {"description": "d" * 256}}) == (
        400, "Invalid input received: description has 256 characters, more than 255.")
    assert put({"volume": {"name": 5}}) == invalid("name", 5, "5 is not of type 'string', 'null'")
    assert put({"volume": {"name": 5, "bogus": 1}}) == invalid("name", 5, "5 is not of type 'string', 'null'")
    assert put({"volume": {"bogus": 1}}, "3.53") == invalid(
        "volume", {"bogus": 1}, "Additional properties are not allowed ('bogus' was unexpected)")
    assert put({"volume": {}}, "3.53") == invalid("volume", {}, "{} is not valid under any of the given schemas")
    assert put({"volume": "x"}) == invalid("volume", "x", "'x' is not of type 'object'")
    assert put({"vol": {}}) == (400, "'volume' is a required property")
    assert put([]) == (400, "[] is not of type 'object'")
    assert put({"volume": {"name": "a"}, "x": 1}) == (400, "Additional properties are not allowed ('x' was unexpected)")
    assert put({"volume": {"metadata": {"bad!": "1"}}}) == invalid(
        "metadata", {"bad!": "1"}, "'bad!' does not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'")
    assert put({"volume": {"metadata": {"k": 1}}}) == invalid("k", 1, "1 is not of type 'string'")
    assert put({"volume": {"metadata": None}}) == invalid("metadata", None, "None is not of type 'object'")
    assert raw(cloud, "POST", f"{url}/metadata", json={"metadata": {"b!": "1", "a!": "2"}}) == (400, {"badRequest": {
        "code": 400, "message": "Invalid input for field/attribute metadata. Value: {'b!': '1', 'a!': '2'}. "
                                "'a!', 'b!' do not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'"}})
    # Validation comes before the lookup.
    missing = f"/volumes/{uuid.uuid4()}"
    assert raw(cloud, "PUT", missing, json={"volume": {"bogus": 1}})[0] == 400
    assert raw(cloud, "PUT", missing, json={"volume": {"name": "n"}})[0] == 404

    # What is accepted: nothing at all before 3.53, null and blank names, the
    # display_ aliases ("name" winning), and metadata, which replaces it all.
    assert put({"volume": {}})[0] == 200
    assert put({"volume": {"name": " " + "x" * 255 + " "}})[1]["name"] == "x" * 255
    assert put({"volume": {"name": None}}, "3.53")[1]["name"] is None
    assert put({"volume": {"name": "   "}})[1]["name"] == ""
    assert put({"volume": {"display_name": "dn", "display_description": " dd "}})[1]["description"] == "dd"
    assert put({"volume": {"name": "n1", "display_name": "n2"}})[1]["name"] == "n1"
    assert put({"volume": {"metadata": {"m": "1"}}})[1]["metadata"] == {"m": "1"}
    assert cloud.sdk.block_storage.get_volume(vol.id).metadata == {"m": "1"}


def test_list_tagged_and_list_owned_never_shows_pool_volumes(cloud):
    backend = backend_of(cloud)
    backend.list_page_size = 2  # real Cinder's next links, followed page by page
    mine = new_volume(cloud, "mine", metadata={"volume_from": "fuxi", "fstype": "ext4"})
    warm = [new_volume(cloud, f"fuxi-pool-w{i}", metadata=POOL_TAGS) for i in range(3)]
    cold = new_volume(cloud, "fuxi-pool-c", metadata={**POOL_TAGS, "fuxi_pool": "cold"})
    stray = new_volume(cloud, "not-ours", metadata={"fuxi_pool_x": "1"})
    half = new_volume(cloud, "half-claimed", metadata={"volume_from": "fuxi", "fuxi_pool": "warm"})

    assert [v.id for v in backend.list_owned()] == [mine.id]
    assert {v.id for v in backend.list_tagged("fuxi_pool")} == {*(v.id for v in warm), cold.id, half.id}
    assert {v.id for v in backend.list_tagged("fuxi_pool", "warm")} == {*(v.id for v in warm), half.id}
    assert [v.id for v in backend.list_tagged("fuxi_pool", "cold")] == [cold.id]
    assert backend.list_tagged("fuxi_pool", "none") == []
    assert [v.id for v in backend.list_tagged("fuxi_pool_x")] == [stray.id]
    # Listed volumes read as get() reads them.
    [listed] = backend.list_tagged("fuxi_pool", "cold")
    assert listed == backend.get(cold.id)
    # A claimed volume (pool tags gone) is a user's volume.
    backend.update_metadata(warm[0].id, {}, ["fuxi_pool", "fuxi_pool_state"])
    assert {v.id for v in backend.list_owned()} == {mine.id, warm[0].id}


def test_one_volume_update_renames_and_replaces_the_metadata(cloud, monkeypatch):
    """A pool claim's finish: PUT /volumes/{id} with name and metadata sets the
    name and replaces the whole metadata in one request, on a reserved volume
    (tier 1/2 claims) and an in-use one (tier 3/4)."""
    bs = cloud.sdk.block_storage
    backend = backend_of(cloud)
    user_tags = {"volume_from": "fuxi", "fstype": "ext4"}

    vol = new_volume(cloud, "fuxi-pool-one", metadata=POOL_TAGS)
    reservation = backend.reserve(vol.id)
    before = raw(cloud, "GET", f"/volumes/{vol.id}")[1]["volume"]
    status, body = raw(cloud, "PUT", f"/volumes/{vol.id}",
                       json={"volume": {"name": "claimed", "metadata": user_tags}})
    assert status == 200
    answer = body["volume"]
    # The new name and metadata, the status and stamp it had; the usual update view.
    assert (answer["name"], answer["metadata"], answer["status"]) == ("claimed", user_tags, "reserved")
    assert answer["updated_at"] == before["updated_at"]
    assert {k for k in answer if not k.startswith("os-vol-")} == {k for k in before if not k.startswith("os-vol-")}
    seen = backend.get(vol.id)
    assert (seen.name, dict(seen.metadata), seen.status) == ("claimed", user_tags, "reserved")

    # CinderBackend's method: exactly one request, a PUT of the volume.
    sent = []
    request = bs.request

    def counting(url, method, *args, **kwargs):
        sent.append((method, url.split("?")[0].rstrip("/").rsplit("/", 2)[-2:]))
        return request(url, method, *args, **kwargs)

    monkeypatch.setattr(bs, "request", counting)
    claimed = backend.rename_and_replace_metadata(vol.id, "docker-name", {**user_tags, "extra": "1"})
    monkeypatch.undo()
    assert sent == [("PUT", ["volumes", vol.id])]
    assert (claimed.id, claimed.name, dict(claimed.metadata), claimed.status) == (
        vol.id, "docker-name", {**user_tags, "extra": "1"}, "reserved")
    assert backend.get(vol.id) == claimed
    backend.rename_and_replace_metadata(vol.id, "emptied", {})  # an empty dict drops every key
    assert dict(backend.get(vol.id).metadata) == {}
    backend.release(reservation)
    assert backend.get(vol.id).status == "available"

    # In use (attachments API, completed): the same, and no admin metadata shows up.
    vol = new_volume(cloud, "fuxi-pool-staged1", metadata=POOL_TAGS)
    att = bs.create_attachment(vol.id, connector=CONNECTOR, mode="rw")
    bs.complete_attachment(att.id)
    claimed = backend.rename_and_replace_metadata(vol.id, "mounted-already", user_tags)
    assert (claimed.name, dict(claimed.metadata), claimed.status) == ("mounted-already", user_tags, "in-use")
    seen = backend.get(vol.id)
    assert (seen.name, dict(seen.metadata), seen.status) == ("mounted-already", user_tags, "in-use")
    assert [a.attachment_id for a in seen.attachments] == [att.id]
    bs.delete_attachment(att.id)
