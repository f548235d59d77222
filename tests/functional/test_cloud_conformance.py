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
