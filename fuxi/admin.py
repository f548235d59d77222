"""fuxi's own calls next to Docker's on the plugin socket, for the `fuxi` CLI:
the warm pools' levels, fill and drain. Same socket, same permissions (root and
group docker), JSON in and out, errors as {"Err": ...}."""

from flask import Blueprint, current_app

from fuxi.api import _body, reply
from fuxi.errors import BadRequest

blueprint = Blueprint("fuxi_admin", __name__)


def _keeper():
    keeper = current_app.extensions["fuxi.volume_service"].pools
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
