"""fuxi's own calls next to Docker's on the plugin socket, for the `fuxi` CLI:
the volumes as this host sees them, one volume in detail, how the server is set
up, and the warm pools' levels, fill and drain. Same socket, same permissions
(root and group docker), JSON in and out, errors as {"Err": ...}.

    POST /fuxi/volumes          {}                -> {"Volumes": [VOLUME, ...]}
    POST /fuxi/volumes/inspect  {"Name": NAME}    -> {"Volume": VOLUME + details}
    POST /fuxi/volumes/release  {"Name": NAME}    -> {"Released": {Name, Backend, VolumeId, Adopted, CloudName}}
    POST /fuxi/server           {}                -> {"Server": {...}}
    POST /fuxi/pool/status      {}                -> {"Pools": [...]}
    POST /fuxi/pool/fill        {"Pool"?, "Count"?} -> {"Made": [volume id, ...]}
    POST /fuxi/pool/drain       {"Pool"?}         -> {"Deleted": [volume id, ...]}
    POST /fuxi/volumes/extend   {"Name": NAME, "Size": GiB} -> {"Extended": {Name, Backend, VolumeId,
                                                   OldSizeGb, NewSizeGb, MountedHere}}

A VOLUME is what Docker's /VolumeDriver.Get answers (Name, Mountpoint, CreatedAt,
Status), so `fuxi volumes` and `docker volume inspect` never disagree.
"""

import os

from flask import Blueprint, current_app

from fuxi.api import _body, _name, reply, volume_answer
from fuxi.errors import BadRequest
from storage_core.waits import deadline

blueprint = Blueprint("fuxi_admin", __name__)

# An inspect reads the volume from the cloud: bounded like Docker's short calls.
INSPECT_SECONDS = 55
# A release may detach what a crash left on this host, then updates the cloud's record.
RELEASE_SECONDS = 55


def _service():
    return current_app.extensions["fuxi.volume_service"]


def _keeper():
    keeper = _service().pools
    if keeper is None:
        raise BadRequest("no warm pool is configured; add a [pool:NAME] section to fuxi.conf")
    return keeper


def _pool_and_count(body):
    pool, count = body.get("Pool"), body.get("Count")
    if pool is not None and not isinstance(pool, str):
        raise BadRequest('"Pool" must be a pool name')
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise BadRequest('"Count" must be a whole number of at least 1')
    return pool, count


@blueprint.post("/fuxi/volumes")
def volumes():
    _body()
    return reply({"Volumes": [volume_answer(info) for info in _service().list()], "Err": ""})


@blueprint.post("/fuxi/volumes/inspect")
def inspect():
    name = _name(_body())
    with deadline(INSPECT_SECONDS, f"fuxi inspect of volume {name!r}"):
        details = _service().describe(name)
    return reply({
        "Volume": {
            **volume_answer(details.info),
            "VolumeId": details.volume_id,
            "Metadata": dict(details.metadata),
            "CloudAttachments": list(details.cloud_attachments),
            "Host": details.host,
            "MountCallers": dict(details.mount_callers),
        },
        "Err": "",
    })


@blueprint.post("/fuxi/volumes/release")
def release():
    """Forget a volume without deleting it (fuxi's tags go; an adopted one gets its old name back)."""
    name = _name(_body())
    with deadline(RELEASE_SECONDS, f"fuxi release of volume {name!r}"):
        released = _service().release(name)
    return reply({
        "Released": {
            "Name": released.name,
            "Backend": released.backend,
            "VolumeId": released.volume_id,
            "Adopted": released.adopted,
            "CloudName": released.cloud_name,
        },
        "Err": "",
    })


@blueprint.post("/fuxi/server")
def server():
    _body()
    # The worker's pid: the process that holds the mounts and answers the calls.
    return reply({"Server": {"pid": os.getpid(), **_service().summary()}, "Err": ""})


@blueprint.post("/fuxi/pool/status")
def pool_status():
    return reply({"Pools": _keeper().status(), "Err": ""})


@blueprint.post("/fuxi/pool/fill")
def pool_fill():
    pool, count = _pool_and_count(_body())
    return reply({"Made": _keeper().fill(pool, count), "Err": ""})


@blueprint.post("/fuxi/pool/drain")
def pool_drain():
    pool, _count = _pool_and_count(_body())
    return reply({"Deleted": _keeper().drain(pool), "Err": ""})


# An extend waits for the cloud (as a Create does), then rescans and grows the file system.
EXTEND_SECONDS = 110


@blueprint.post("/fuxi/volumes/extend")
def extend():
    """Grow a volume; mounted here, its file system grows while containers use it."""
    body = _body()
    name, size = _name(body), body.get("Size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise BadRequest('"Size" must be the new size in GiB, a whole number of at least 1')
    with deadline(EXTEND_SECONDS, f"fuxi extend of volume {name!r}"):
        extended = _service().extend(name, size)
    return reply({
        "Extended": {
            "Name": extended.name,
            "Backend": extended.backend,
            "VolumeId": extended.volume_id,
            "OldSizeGb": extended.old_size_gb,
            "NewSizeGb": extended.new_size_gb,
            "MountedHere": extended.mounted_here,
        },
        "Err": "",
    })
