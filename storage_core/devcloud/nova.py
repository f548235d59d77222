"""Nova (compute v2.1) API emulation: servers and their volume attachments.

Only the HTTP face lives here; the attach/detach flow is compute.py. Shapes
follow Nova's views, request rules its JSON schemas, and what a call accepts
or shows follows its microversions: ``tag`` at 2.49 (shown from 2.70),
``delete_on_termination`` at 2.79, multiattach volumes from 2.60, and from
2.89 attachments show Cinder's ``attachment_id`` and their ``bdm_uuid``
instead of an ``id``. Errors are Nova's faults, named as Cinder names them
(``itemNotFound``, ``badRequest``, ``conflictingRequest`` ...).
"""

import hashlib
import re
import uuid

from storage_core.devcloud import microversion as mv
from storage_core.devcloud.compute import ComputeError
from storage_core.devcloud.faults import apply_fault
from storage_core.devcloud.web import Response, Route, cinder_error, find_route

COMPUTE = mv.Negotiator("compute", "X-OpenStack-Nova-API-Version",
                        mv.APIVersion(2, 1), mv.APIVersion(2, 96), echo_legacy=True)
TAG_ON_ATTACH = mv.APIVersion(2, 49)
MULTIATTACH = mv.APIVersion(2, 60)
SHOW_TAG = mv.APIVersion(2, 70)
STRICT_ATTACHMENT_QUERY = mv.APIVersion(2, 75)
DELETE_ON_TERMINATION = mv.APIVersion(2, 79)
ATTACHMENT_ID_AND_BDM_UUID = mv.APIVersion(2, 89)

_NOT_FOUND = "The resource could not be found."
# Nova's create_volume_attachment schema.
_DEVICE_RE = re.compile(r"(^/dev/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$")
_TAG_RE = re.compile(r"^[^,/]*$")
_BOOLEAN_STRINGS = {"true": True, "1": True, "yes": True, "on": True, "y": True, "t": True,
                    "false": False, "0": False, "no": False, "off": False, "n": False,
                    "f": False}
_FLAVOR = {"vcpus": 1, "ram": 1024, "disk": 0, "ephemeral": 0, "swap": 0,
           "original_name": "devcloud.small", "extra_specs": {}}


def _invalid(path, value, reason):
    # Nova's schema validation message; nested fields are joined by "/".
    return ComputeError(400, f"Invalid input for field/attribute {path}. Value: {value}. "
                             f"{reason}")


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


def _nova_time(cinder_time):
    # Nova's server timestamps: "2026-11-26T21:33:59Z".
    return cinder_time.split(".")[0] + "Z"


class Compute:
    """Answers ``/compute/...``."""

    def __init__(self, service, identity, faults, base_url):
        self._service = service
        self._identity = identity
        self._faults = faults
        self._base_url = base_url
        self._routes = [
            Route("GET", "servers", self._list_servers, "server.list"),
            Route("GET", "servers/detail", self._list_servers_detail, "server.list"),
            Route("GET", "servers/*", self._show_server, "server.get"),
            Route("GET", "servers/*/os-volume_attachments", self._list_attachments,
                  "volume_attachment.list"),
            Route("POST", "servers/*/os-volume_attachments", self._create_attachment,
                  "volume_attachment.create"),
            Route("GET", "servers/*/os-volume_attachments/*", self._show_attachment,
                  "volume_attachment.get"),
            Route("DELETE", "servers/*/os-volume_attachments/*", self._delete_attachment,
                  "volume_attachment.delete"),
        ]

    # -- entry ---------------------------------------------------------------

    def handle(self, req, subpath) -> Response:
        parts = [p for p in subpath.split("/") if p]
        if not parts:
            if req.method == "GET":
                return Response(200, {"versions": [self._v2_doc(), self._v21_doc()]})
            return cinder_error(404, _NOT_FOUND)
        if parts == ["v2"] and req.method == "GET":
            return Response(200, {"version": self._v2_doc()})
        if parts[0] != "v2.1":
            return cinder_error(404, _NOT_FOUND)
        rest = parts[1:]
        if not rest and req.method == "GET":
            # Served without a token, as Nova's version pipeline does.
            return Response(200, {"version": self._v21_doc()})

        return mv.serve_versioned(
            self._identity, COMPUTE, req,
            lambda claims, version: self._dispatch(req, rest, claims, version), cinder_error,
        )

    def _dispatch(self, req, rest, claims, version) -> Response:
        # Old catalogs put the project id after v2.1; devstack's does not.
        url_project = None
        if rest and rest[0] != "servers":
            url_project, rest = rest[0], rest[1:]
        route, args = find_route(self._routes, req.method, rest)
        if route is None:
            return cinder_error(404, _NOT_FOUND)
        if url_project is not None and url_project != claims.get("p"):
            return cinder_error(400, "Malformed request URL: URL's project_id "
                                     f"'{url_project}' doesn't match Context's project_id "
                                     f"'{claims.get('p')}'")
        if not claims.get("p"):
            return cinder_error(403, "Policy doesn't allow this operation: a project "
                                     "scoped token is required.")
        fault = apply_fault(self._faults, route.operation, cinder_error)
        if fault is not None:
            return fault
        ctx = _Context(req, version, self._base_url(), url_project)
        try:
            return route.handler(ctx, *args)
        except ComputeError as exc:
            return cinder_error(exc.status, exc.message)

    def _v21_doc(self):
        return {
            "id": "v2.1",
            "status": "CURRENT",
            "version": str(COMPUTE.max_version),
            "min_version": str(COMPUTE.min_version),
            "updated": "2013-07-23T11:33:21Z",
            "links": [
                {"rel": "self", "href": f"{self._base_url()}/compute/v2.1/"},
                {"rel": "describedby", "type": "text/html",
                 "href": "http://docs.openstack.org/"},
            ],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}],
        }

    def _v2_doc(self):
        return {
            "id": "v2.0",
            "status": "SUPPORTED",
            "version": "",
            "min_version": "",
            "updated": "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self._base_url()}/compute/v2/"}],
        }

    # -- servers -------------------------------------------------------------

    def _list_servers(self, ctx):
        return self._server_list(ctx, detail=False)

    def _list_servers_detail(self, ctx):
        return self._server_list(ctx, detail=True)

    def _server_list(self, ctx, detail):
        servers = self._service.list_servers()
        name = ctx.req.param("name")
        if name is not None:
            # Nova's name filter is a regular expression, not an exact match.
            try:
                pattern = re.compile(name)
            except re.error:
                servers = []
            else:
                servers = [s for s in servers if pattern.search(s["name"])]
        for key, field in (("uuid", "id"), ("hostname", "hostname")):
            wanted = ctx.req.param(key)
            if wanted is not None:
                servers = [s for s in servers if s[field] == wanted]
        status = ctx.req.param("status")
        if status is not None and status.upper() != "ACTIVE":
            servers = []  # every devcloud server is ACTIVE
        servers = _page(servers, ctx.req)
        if detail:
            items = [self._server_detail(ctx, s) for s in servers]
        else:
            items = [{"id": s["id"], "name": s["name"], "links": self._links(ctx, s["id"])}
                     for s in servers]
        return Response(200, {"servers": items})

    def _show_server(self, ctx, server_id):
        server = self._service.get_server(server_id)
        return Response(200, {"server": self._server_detail(ctx, server)})

    def _links(self, ctx, server_id):
        project = ctx.url_project or ""
        prefix = f"{project}/" if project else ""
        return [
            {"rel": "self", "href": f"{ctx.base_url}/compute/v2.1/{prefix}servers/{server_id}"},
            {"rel": "bookmark", "href": f"{ctx.base_url}/compute/{prefix}servers/{server_id}"},
        ]

    def _server_detail(self, ctx, server):
        v = ctx.version
        bdms = self._service.bdms_of_server(server["id"])
        volumes = [{"id": b["volume_id"]} for b in bdms]
        if v >= mv.APIVersion(2, 3):
            for entry, bdm in zip(volumes, bdms):
                entry["delete_on_termination"] = bdm["delete_on_termination"]
        host_id = hashlib.sha224((server["project_id"] + server["host"]).encode()).hexdigest()
        view = {
            "id": server["id"],
            "name": server["name"],
            "status": "ACTIVE",
            "tenant_id": server["project_id"],
            "user_id": server["user_id"],
            "metadata": {},
            "hostId": host_id,
            "image": "",  # booted from a volume
            "flavor": dict(_FLAVOR) if v >= mv.APIVersion(2, 47) else {
                "id": "devcloud.small",
                "links": [{"rel": "bookmark",
                           "href": f"{ctx.base_url}/compute/flavors/devcloud.small"}]},
            "created": _nova_time(server["created_at"]),
            "updated": _nova_time(server["updated_at"]),
            "addresses": {},
            "accessIPv4": "",
            "accessIPv6": "",
            "links": self._links(ctx, server["id"]),
            "OS-DCF:diskConfig": "MANUAL",
            "progress": 0,
            "OS-EXT-AZ:availability_zone": "nova",
            "config_drive": "True",
            "key_name": None,
            "OS-SRV-USG:launched_at": server["created_at"],
            "OS-SRV-USG:terminated_at": None,
            # The devcloud user is admin, and Nova shows admins these.
            "OS-EXT-SRV-ATTR:host": server["host"],
            "OS-EXT-SRV-ATTR:instance_name": f"instance-{server['index']:08x}",
            "OS-EXT-SRV-ATTR:hypervisor_hostname": server["host"],
            "OS-EXT-STS:task_state": None,
            "OS-EXT-STS:vm_state": "active",
            "OS-EXT-STS:power_state": 1,
            "os-extended-volumes:volumes_attached": volumes,
            "security_groups": [{"name": "default"}],
        }
        if v >= mv.APIVersion(2, 3):
            view.update({
                "OS-EXT-SRV-ATTR:reservation_id": f"r-{server['id'][:8]}",
                "OS-EXT-SRV-ATTR:launch_index": 0,
                "OS-EXT-SRV-ATTR:hostname": server["hostname"],
                "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                "OS-EXT-SRV-ATTR:user_data": None,
            })
        for since, key, value in ((9, "locked", False), (16, "host_status", "UP"),
                                  (19, "description", None), (26, "tags", []),
                                  (63, "trusted_image_certificates", None),
                                  (71, "server_groups", []), (73, "locked_reason", None),
                                  (96, "pinned_availability_zone", None)):
            if v >= mv.APIVersion(2, since):
                view[key] = value
        return view

    # -- volume attachments --------------------------------------------------

    def _list_attachments(self, ctx, server_id):
        self._service.get_server(server_id)
        if ctx.version >= STRICT_ATTACHMENT_QUERY:
            extra = sorted(set(ctx.req.query) - {"limit", "offset"})
            if extra:
                listed = ", ".join(repr(k) for k in extra)
                raise ComputeError(400, f"Invalid input for query parameters {extra[0]}. "
                                        f"Value: {ctx.req.param(extra[0])}. Additional "
                                        f"properties are not allowed ({listed} "
                                        f"{'was' if len(extra) == 1 else 'were'} unexpected)")
        bdms = _page(self._service.bdms_of_server(server_id), ctx.req, offsets=True)
        return Response(200, {"volumeAttachments": [_attachment_view(ctx, b) for b in bdms]})

    def _show_attachment(self, ctx, server_id, volume_id):
        bdm = self._service.get_bdm(server_id, volume_id)
        return Response(200, {"volumeAttachment": _attachment_view(ctx, bdm)})

    def _create_attachment(self, ctx, server_id):
        body = _attachment_body(ctx)
        bdm = self._service.attach(
            server_id, body["volumeId"], tag=body.get("tag"),
            delete_on_termination=body.get("delete_on_termination", False),
            supports_multiattach=ctx.version >= MULTIATTACH,
        )
        # Nova's create answer: always "id", never attachment_id/bdm_uuid.
        view = {"id": bdm["volume_id"], "serverId": server_id, "volumeId": bdm["volume_id"],
                "device": bdm["device"]}
        if ctx.version >= SHOW_TAG:
            view["tag"] = bdm["tag"]
        if ctx.version >= DELETE_ON_TERMINATION:
            view["delete_on_termination"] = bdm["delete_on_termination"]
        return Response(200, {"volumeAttachment": view})

    def _delete_attachment(self, ctx, server_id, volume_id):
        self._service.detach(server_id, volume_id)
        return Response(202)


class _Context:
    def __init__(self, req, version, base_url, url_project):
        self.req = req
        self.version = version
        self.base_url = base_url
        self.url_project = url_project


def _attachment_view(ctx, bdm) -> dict:
    """Nova's _translate_attachment_detail_view at the request's version."""
    v = ctx.version
    view = {} if v >= ATTACHMENT_ID_AND_BDM_UUID else {"id": bdm["volume_id"]}
    view.update(volumeId=bdm["volume_id"], serverId=bdm["server_id"])
    if bdm["device"]:
        view["device"] = bdm["device"]
    if v >= SHOW_TAG:
        view["tag"] = bdm["tag"]
    if v >= DELETE_ON_TERMINATION:
        view["delete_on_termination"] = bdm["delete_on_termination"]
    if v >= ATTACHMENT_ID_AND_BDM_UUID:
        view["attachment_id"] = bdm["attachment_id"]
        view["bdm_uuid"] = bdm["id"]
    return view


def _attachment_body(ctx) -> dict:
    """The volumeAttachment of a create request, checked as Nova's schema does."""
    try:
        body = ctx.req.json()
    except (ValueError, UnicodeDecodeError):
        raise ComputeError(400, "Malformed request body") from None
    if not isinstance(body, dict):
        raise ComputeError(400, f"{body!r} is not of type 'object'")
    extra = sorted(set(body) - {"volumeAttachment"})
    if "volumeAttachment" not in body:
        raise ComputeError(400, "'volumeAttachment' is a required property")
    if extra:
        raise ComputeError(400, "Additional properties are not allowed "
                                f"({', '.join(repr(k) for k in extra)} "
                                f"{'was' if len(extra) == 1 else 'were'} unexpected)")
    inner = body["volumeAttachment"]
    if not isinstance(inner, dict):
        raise _invalid("volumeAttachment", inner, f"{inner!r} is not of type 'object'")
    allowed = {"volumeId", "device"}
    if ctx.version >= TAG_ON_ATTACH:
        allowed.add("tag")
    if ctx.version >= DELETE_ON_TERMINATION:
        allowed.add("delete_on_termination")
    if "volumeId" not in inner:
        raise _invalid("volumeAttachment", inner, "'volumeId' is a required property")
    extra = sorted(set(inner) - allowed)
    if extra:
        raise _invalid("volumeAttachment", inner,
                       f"Additional properties are not allowed "
                       f"({', '.join(repr(k) for k in extra)} "
                       f"{'was' if len(extra) == 1 else 'were'} unexpected)")
    volume_id = inner["volumeId"]
    if not isinstance(volume_id, str) or not _is_uuid(volume_id):
        raise _invalid("volumeAttachment/volumeId", volume_id, f"{volume_id!r} is not a 'uuid'")
    device = inner.get("device")
    if device is not None and (not isinstance(device, str) or not _DEVICE_RE.search(device)):
        # Any valid name is accepted and then ignored, as libvirt does.
        raise _invalid("volumeAttachment/device", device,
                       f"{device!r} does not match '{_DEVICE_RE.pattern}'")
    tag = inner.get("tag")
    if "tag" in inner and (not isinstance(tag, str) or not 1 <= len(tag) <= 60
                           or not _TAG_RE.match(tag)):
        raise _invalid("volumeAttachment/tag", tag, f"{tag!r} is not a valid tag: 1-60 "
                                                    "characters, no ',' or '/'")
    if "delete_on_termination" in inner:
        value = inner["delete_on_termination"]
        if not isinstance(value, bool):
            if str(value).lower() not in _BOOLEAN_STRINGS:
                raise _invalid("volumeAttachment/delete_on_termination", value,
                               f"{value!r} is not of type 'boolean'")
            value = _BOOLEAN_STRINGS[str(value).lower()]
        inner = dict(inner, delete_on_termination=value)
    return inner


def _page(items, req, offsets=False):
    """Nova's common.limited / marker paging, enough for lists of a few items."""
    marker = req.param("marker")
    if marker is not None and not offsets:
        ids = [i["id"] for i in items]
        if marker not in ids:
            raise ComputeError(400, f"marker [{marker}] not found")
        items = items[ids.index(marker) + 1:]
    try:
        offset = int(req.param("offset", 0)) if offsets else 0
        limit = req.param("limit")
        limit = int(limit) if limit is not None else None
    except ValueError:
        raise ComputeError(400, "limit and offset must be integers") from None
    if offset < 0 or (limit is not None and limit < 0):
        raise ComputeError(400, "limit and offset must be >= 0")
    items = items[offset:]
    return items if limit is None else items[:limit]
