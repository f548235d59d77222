"""The Docker Volume Plugin protocol: decode the JSON dockerd sends, call the
service, encode what dockerd reads. Nothing else happens here.
"""

import json

from flask import Blueprint, Response, request

from fuxi.errors import BadRequest
from storage_core.waits import deadline

# dockerd sends this Accept type and reads any JSON back.
PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"

blueprint = Blueprint("docker_volume_plugin", __name__)

# dockerd gives up on Create and Mount after 120 s and on every other call after
# 60 s; fuxi's steps stop a little earlier, so the answer is fuxi's clear error,
# not dockerd's timeout. A step cut short leaves its journal record, and the
# next call of the volume (or the next start) finishes it.
LONG_CALL_SECONDS = 115
CALL_SECONDS = 55


def _within_docker_deadline(call, name, seconds=CALL_SECONDS):
    return deadline(seconds, f"Docker's {call} of volume {name!r}")


def reply(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype=PLUGIN_CONTENT_TYPE)


def _body() -> dict:
    # dockerd sends no Content-Type, so the body is parsed whatever it claims to be.
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise BadRequest("the request body nests JSON too deeply to read; send a flat JSON object") from None
    except ValueError as exc:
        # Not JSON, not UTF-8 (JSONDecodeError, UnicodeDecodeError), or a number
        # too long to convert (int's digit limit): the caller's mistake, not ours.
        raise BadRequest(f"the request body is not JSON ({_shorten(str(exc))}); send a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not {type(body).__name__}")
    return body


def _shorten(text, limit=200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _name(body) -> str:
    name = body.get("Name")
    if name is None or name == "":
        raise BadRequest('the request has no "Name"; every volume call names its volume')
    if not isinstance(name, str):
        raise BadRequest(f'"Name" must be a string, not {type(name).__name__}')
    return name


def _caller_id(body):
    caller = body.get("ID")
    if caller is not None and not isinstance(caller, str):
        raise BadRequest(f'"ID" must be a string, not {type(caller).__name__}')
    return caller


def _service():
    from flask import current_app

    return current_app.extensions["fuxi.volume_service"]


def _rfc3339(when) -> str:
    if when is None:
        return ""
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def volume_answer(info) -> dict:
    """A volume as Docker's Get answers it (Name, Mountpoint, CreatedAt, Status)."""
    return {
        "Name": info.name,
        "Mountpoint": info.mountpoint or "",
        "CreatedAt": _rfc3339(info.created_at),
        "Status": dict(info.status),
    }


@blueprint.post("/Plugin.Activate")
def activate():
    return reply({"Implements": ["VolumeDriver"]})


@blueprint.post("/VolumeDriver.Capabilities")
def capabilities():
    # global: a volume is the same cloud volume from every host of the cluster.
    return reply({"Capabilities": {"Scope": "global"}})


@blueprint.post("/VolumeDriver.Create")
def create():
    body = _body()
    name = _name(body)
    opts = body.get("Opts")
    if opts is not None and not isinstance(opts, dict):
        raise BadRequest(f'"Opts" must be a JSON object of strings, not {type(opts).__name__}')
    with _within_docker_deadline("Create", name, LONG_CALL_SECONDS):
        _service().create(name, opts or {})
    return reply({"Err": ""})


@blueprint.post("/VolumeDriver.Remove")
def remove():
    name = _name(_body())
    with _within_docker_deadline("Remove", name):
        _service().remove(name)
    return reply({"Err": ""})


@blueprint.post("/VolumeDriver.Mount")
def mount():
    body = _body()
    name = _name(body)
    with _within_docker_deadline("Mount", name, LONG_CALL_SECONDS):
        mountpoint = _service().mount(name, _caller_id(body))
    return reply({"Mountpoint": mountpoint, "Err": ""})


@blueprint.post("/VolumeDriver.Unmount")
def unmount():
    body = _body()
    name = _name(body)
    with _within_docker_deadline("Unmount", name):
        _service().unmount(name, _caller_id(body))
    return reply({"Err": ""})


@blueprint.post("/VolumeDriver.Path")
def path():
    mountpoint = _service().path(_name(_body()))
    return reply({"Mountpoint": mountpoint or "", "Err": ""})


@blueprint.post("/VolumeDriver.Get")
def get():
    return reply({"Volume": volume_answer(_service().get(_name(_body()))), "Err": ""})


@blueprint.post("/VolumeDriver.List")
def list_volumes():
    _body()
    # Docker reads only names and mount points here; each volume's status is Get's.
    volumes = [{"Name": name, "Mountpoint": mountpoint or ""} for name, mountpoint in _service().list_mountpoints()]
    return reply({"Volumes": volumes, "Err": ""})
