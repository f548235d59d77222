"""Cinder v3 API emulation: routing, request validation and Cinder's views.

Only the HTTP face lives here; what happens to volumes is backend.py. The
shapes follow Cinder's own view builders (volume detail/summary, attachment
detail/summary), request rules follow its JSON schemas, and availability of
calls follows its microversions (attachments at 3.27, os-complete at 3.44,
``mode`` at 3.54), so a client that works here works against Cinder.
"""

import ast
import json
import logging
import re
import uuid
from urllib.parse import quote

from storage_core.devcloud import microversion as mv
from storage_core.devcloud.backend import CinderError, Invalid, NotFound, HOST
from storage_core.devcloud.faults import apply_fault
from storage_core.devcloud.web import HttpError, Response, Route, cinder_error, find_route

LOG = logging.getLogger(__name__)

AVAILABILITY_ZONE = "nova"
DEFAULT_VOLUME_TYPE = "__DEFAULT__"
#: Volume types the cloud knows; Cinder refuses any other name with a 404.
VOLUME_TYPES = [
    {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "devcloud-type-__DEFAULT__")),
        "name": DEFAULT_VOLUME_TYPE,
        "description": "Default Volume Type",
        "is_public": True,
        "os-volume-type-access:is_public": True,
        "extra_specs": {},
        "qos_specs_id": None,
    },
    {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "devcloud-type-local")),
        "name": "local",
        "description": "Sparse files exported as loop devices",
        "is_public": True,
        "os-volume-type-access:is_public": True,
        "extra_specs": {"volume_backend_name": "local"},
        "qos_specs_id": None,
    },
    {
        # Cinder makes a volume multiattach only through its type's extra spec.
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "devcloud-type-multiattach")),
        "name": "multiattach",
        "description": "Volumes that several servers may attach at once (one shared "
                       "loop device)",
        "is_public": True,
        "os-volume-type-access:is_public": True,
        "extra_specs": {"multiattach": "<is> True"},
        "qos_specs_id": None,
    },
]
#: What an admin's os-reset_status may set (Cinder's volume status enum, in part).
RESETTABLE_STATUSES = ("available", "in-use", "error", "error_deleting", "creating", "deleting",
                       "attaching", "detaching", "reserved", "maintenance")
MAX_LIMIT = 1000  # Cinder's osapi_max_limit
_UPDATED = "2023-09-29T00:00:00Z"
_NOT_FOUND = "The resource could not be found."
_SORT_KEYS = ("created_at", "updated_at", "id", "name", "size", "status")
#: From 3.53 a volume update must name at least one of these.
SUPPORT_VOLUME_SCHEMA_CHANGES = mv.APIVersion(3, 53)
_UPDATE_FIELDS = ("name", "description", "display_name", "display_description", "metadata")
#: Cinder's volume-detail attributes that come from API extensions: shown by
#: GET (show and list), not in the answer of an update.
_EXTENSION_ATTRIBUTES = ("os-vol-tenant-attr:tenant_id", "os-vol-host-attr:host",
                         "os-vol-mig-status-attr:migstat", "os-vol-mig-status-attr:name_id")


def _invalid_field(field, value, reason):
    # Cinder's JSON-schema validation message.
    return Invalid(f"Invalid input for field/attribute {field}. Value: {value}. {reason}")


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


def _is_multiattach_type(vtype) -> bool:
    # Cinder's scheduler-style "<is> True" boolean extra spec.
    return str(vtype["extra_specs"].get("multiattach", "")).lower() == "<is> true"


def _find_type(name_or_id):
    for vtype in VOLUME_TYPES:
        if name_or_id in (vtype["name"], vtype["id"]):
            return vtype
    return None


class BlockStorage:
    """Answers ``/volume/...``."""

    def __init__(self, service, identity, faults, base_url):
        self._service = service
        self._identity = identity
        self._faults = faults
        # The volume service acts out volume_status faults (it knows when a
        # volume would have become available or in-use).
        service.faults = faults
        self._base_url = base_url
        r = Route
        self._routes = [
            r("GET", "volumes", self._list_volumes, "volume.list"),
            r("GET", "volumes/detail", self._list_volumes_detail, "volume.list"),
            r("POST", "volumes", self._create_volume, "volume.create"),
            r("GET", "volumes/*", self._show_volume, "volume.get"),
            r("PUT", "volumes/*", self._update_volume, "volume.update"),
            r("DELETE", "volumes/*", self._delete_volume, "volume.delete"),
            # Volume actions: os-extend (fault hook "volume.extend", inside),
            # and the admin's os-reset_status, how an operator mends a volume
            # a failure left in "error" (no fault hook of its own).
            r("POST", "volumes/*/action", self._volume_action),
            r("GET", "volumes/*/metadata", self._get_metadata, "volume.metadata"),
            r("POST", "volumes/*/metadata", self._update_metadata, "volume.metadata"),
            r("PUT", "volumes/*/metadata", self._replace_metadata, "volume.metadata"),
            r("GET", "volumes/*/metadata/*", self._get_metadata_item, "volume.metadata"),
            r("PUT", "volumes/*/metadata/*", self._set_metadata_item, "volume.metadata"),
            r("DELETE", "volumes/*/metadata/*", self._delete_metadata_item, "volume.metadata"),
            r("GET", "attachments", self._list_attachments, "attachment.list", mv.NEW_ATTACH),
            r("GET", "attachments/detail", self._list_attachments_detail, "attachment.list",
              mv.NEW_ATTACH),
            r("POST", "attachments", self._create_attachment, "attachment.create", mv.NEW_ATTACH),
            r("GET", "attachments/*", self._show_attachment, "attachment.get", mv.NEW_ATTACH),
            r("PUT", "attachments/*", self._update_attachment, "attachment.update", mv.NEW_ATTACH),
            r("DELETE", "attachments/*", self._delete_attachment, "attachment.delete",
              mv.NEW_ATTACH),
            r("POST", "attachments/*/action", self._attachment_action, "attachment.complete",
              mv.NEW_ATTACH_COMPLETION),
            r("GET", "types", self._list_types),
            r("GET", "types/default", self._default_type),
            r("GET", "types/*", self._show_type),
        ]
        self._collections = {route.pattern[0] for route in self._routes}

    # -- entry ---------------------------------------------------------------

    def handle(self, req, subpath) -> Response:
        parts = [p for p in subpath.split("/") if p]
        if not parts:
            if req.method == "GET":
                # Cinder answers its root with 300 Multiple Choices.
                return Response(300, {"versions": [self._version_doc()]})
            return cinder_error(404, _NOT_FOUND)
        if parts[0] != "v3":
            return cinder_error(404, _NOT_FOUND)
        rest = parts[1:]
        if not rest and req.method == "GET":
            return Response(200, {"version": self._version_doc()})

        return mv.serve_versioned(
            self._identity, mv.VOLUME, req,
            lambda claims, version: self._dispatch(req, rest, claims, version), cinder_error,
        )

    def _dispatch(self, req, rest, claims, version) -> Response:
        # Since 3.67 the project id in the URL is optional; old clients (and
        # the catalog here) put it in.
        if rest and rest[0] not in self._collections:
            url_project, rest = rest[0], rest[1:]
        else:
            url_project = None
        if not rest:
            if url_project and req.method == "GET":
                return Response(200, {"version": self._version_doc()})
            return cinder_error(404, _NOT_FOUND)
        route, args = find_route(self._routes, req.method, rest)
        if route is None or (route.min_version and version < route.min_version):
            return cinder_error(404, _NOT_FOUND)
        if url_project is not None and url_project != claims.get("p"):
            return cinder_error(400, "Malformed request url")
        if not claims.get("p"):
            return cinder_error(403, "Policy doesn't allow this operation: a project "
                                     "scoped token is required.")
        if route.operation:
            fault = apply_fault(self._faults, route.operation, cinder_error)
            if fault is not None:
                return fault
        ctx = _Context(req, claims["p"], claims["u"], version, self._base_url())
        try:
            return route.handler(ctx, *args)
        except CinderError as exc:
            return cinder_error(exc.status, exc.message)
        except HttpError as exc:
            return exc.response

    def _version_doc(self):
        return {
            "id": "v3.0",
            "status": "CURRENT",
            "version": str(mv.MAX_VERSION),
            "min_version": str(mv.MIN_VERSION),
            "updated": _UPDATED,
            "links": [
                {"rel": "describedby", "type": "text/html",
                 "href": "https://docs.openstack.org/"},
                {"rel": "self", "href": f"{self._base_url()}/volume/v3/"},
            ],
            "media-types": [
                {"base": "application/json",
                 "type": "application/vnd.openstack.volume+json;version=3"}
            ],
        }

    # -- volumes -------------------------------------------------------------

    def _create_volume(self, ctx):
        body = ctx.body_object("volume")
        name = _optional_string(body, "name", 255, alias="display_name")
        description = _optional_string(body, "description", 255, alias="display_description")
        size = _volume_size(body.get("size"))
        metadata = _metadata(body.get("metadata"), allow_null=True) or {}
        for unsupported in ("snapshot_id", "source_volid", "imageRef", "image_id",
                            "backup_id", "consistencygroup_id", "group_id"):
            if body.get(unsupported) is not None:
                raise Invalid(f"Invalid input received: devcloud cannot create a volume "
                              f"from {unsupported}.")
        if body.get("multiattach"):
            # Cinder's own words; devcloud's multiattach type is "multiattach".
            raise Invalid("multiattach parameter has been removed. The default behavior is to "
                          "use multiattach enabled volume types. Contact your administrator "
                          "to create a multiattach enabled volume type and use it to create "
                          "multiattach volumes.")
        type_name = body.get("volume_type") or DEFAULT_VOLUME_TYPE
        vtype = _find_type(type_name)
        if vtype is None:
            raise NotFound(f"Volume type with name {type_name} could not be found.")
        zone = body.get("availability_zone") or AVAILABILITY_ZONE
        if zone != AVAILABILITY_ZONE:
            raise Invalid(f"Availability zone '{zone}' is invalid.")
        volume = self._service.create_volume(
            ctx.project_id, ctx.user_id, name=name, description=description, size=size,
            metadata=metadata, volume_type=vtype["name"], availability_zone=zone,
            multiattach=_is_multiattach_type(vtype),
        )
        return Response(202, {"volume": self._volume_detail(ctx, volume)})

    def _show_volume(self, ctx, volume_id):
        volume = self._service.get_volume(ctx.project_id, volume_id)
        return Response(200, {"volume": self._volume_detail(ctx, volume)})

    def _update_volume(self, ctx, volume_id):
        # Cinder validates the body before it looks the volume up.
        changes = _volume_update(ctx.body(), ctx.version)
        volume, updated_before = self._service.update_volume(ctx.project_id, volume_id, changes)
        view = self._volume_detail(ctx, volume)
        for key in _EXTENSION_ATTRIBUTES:
            view.pop(key, None)
        # Cinder answers with the volume it read before saving: its old stamp.
        view["updated_at"] = updated_before
        return Response(200, {"volume": view})

    def _list_volumes(self, ctx):
        return self._volume_list(ctx, detail=False)

    def _list_volumes_detail(self, ctx):
        return self._volume_list(ctx, detail=True)

    def _volume_list(self, ctx, detail):
        if ctx.version >= mv.RESOURCE_FILTER:
            _check_filter_keys(ctx.req)
        volumes = _filter_volumes(self._service.list_volumes(ctx.project_id), ctx.req)
        volumes = _sort(volumes, ctx.req)
        page, next_marker = _paginate(volumes, ctx.req, "Volume")
        if detail:
            # One read of the attachments for the whole page, not one per volume.
            attached = self._service.attachments_by_volume()
            items = [self._volume_detail(ctx, v, attached.get(v["id"], [])) for v in page]
        else:
            items = [
                {"id": v["id"], "name": v["name"], "links": self._links(ctx, "volumes", v["id"])}
                for v in page
            ]
        body = {"volumes": items}
        if next_marker is not None:
            path = "volumes/detail" if detail else "volumes"
            body["volumes_links"] = [self._next_link(ctx, path, next_marker)]
        if (ctx.version >= mv.APIVersion(3, 45)
                and str(ctx.req.param("with_count", "")).lower() in ("true", "1", "yes")):
            body["count"] = len(volumes)
        return Response(200, body)

    def _delete_volume(self, ctx, volume_id):
        for flag in ("cascade", "force"):
            value = ctx.req.param(flag)
            if value is not None and value.lower() not in ("true", "false", "0", "1",
                                                           "yes", "no", "on", "off"):
                raise Invalid(f"Invalid value '{value}' for {flag}.")
        self._service.delete_volume(ctx.project_id, volume_id)
        return Response(202)

    def _volume_action(self, ctx, volume_id):
        body = ctx.body()
        if not isinstance(body, dict) or len(body) != 1:
            raise Invalid("Malformed request body")
        action, args = next(iter(body.items()))
        if action == "os-extend":
            return self._extend(ctx, volume_id, args)
        if action != "os-reset_status":
            raise Invalid(f"There is no such action: {action}")
        status = args.get("status") if isinstance(args, dict) else None
        if status not in RESETTABLE_STATUSES:
            raise _invalid_field("status", status, f"{status!r} is not one of {list(RESETTABLE_STATUSES)}")
        self._service.reset_status(ctx.project_id, volume_id, status)
        return Response(202)

    def _extend(self, ctx, volume_id, args):
        """os-extend: an available volume, or (from 3.42) an in-use one, grows;
        the backing file grows, and whoever holds its loop device refreshes it."""
        fault = apply_fault(self._faults, "volume.extend", cinder_error)
        if fault is not None:
            return fault
        if not isinstance(args, dict):
            raise _invalid_field("os-extend", args, f"{args!r} is not of type 'object'")
        if "new_size" not in args:
            raise _invalid_field("os-extend", args, "'new_size' is a required property")
        extra = [k for k in args if k != "new_size"]
        if extra:
            raise _invalid_field("os-extend", args, _unexpected(extra))
        new_size = _volume_size(args["new_size"], field="new_size")
        self._service.extend_volume(ctx.project_id, volume_id, new_size,
                                    in_use_allowed=ctx.version >= mv.VOLUME_EXTEND_INUSE)
        return Response(202)

    def _get_metadata(self, ctx, volume_id):
        volume = self._service.get_volume(ctx.project_id, volume_id)
        return Response(200, {"metadata": volume["metadata"]})

    def _update_metadata(self, ctx, volume_id, replace=False):
        self._service.get_volume(ctx.project_id, volume_id)  # 404 before 400
        body = ctx.body()
        if not isinstance(body, dict) or "metadata" not in body:
            raise Invalid("Malformed request body")
        metadata = _metadata(body["metadata"])
        new = self._service.update_metadata(ctx.project_id, volume_id, metadata, replace)
        return Response(200, {"metadata": new})

    def _replace_metadata(self, ctx, volume_id):
        return self._update_metadata(ctx, volume_id, replace=True)

    def _get_metadata_item(self, ctx, volume_id, key):
        volume = self._service.get_volume(ctx.project_id, volume_id)
        if key not in volume["metadata"]:
            raise NotFound(f"Volume {volume_id} has no metadata with key {key}.")
        return Response(200, {"meta": {key: volume["metadata"][key]}})

    def _set_metadata_item(self, ctx, volume_id, key):
        self._service.get_volume(ctx.project_id, volume_id)
        body = ctx.body()
        if not isinstance(body, dict) or not isinstance(body.get("meta"), dict):
            raise Invalid("Malformed request body")
        meta = _metadata(body["meta"], field="meta")
        if key not in meta:
            raise Invalid("Request body and URI mismatch")
        if len(meta) > 1:
            raise Invalid("Request body contains too many items")
        self._service.update_metadata(ctx.project_id, volume_id, meta, replace=False)
        return Response(200, {"meta": meta})

    def _delete_metadata_item(self, ctx, volume_id, key):
        self._service.delete_metadata_item(ctx.project_id, volume_id, key)
        return Response(200)

    # -- attachments ---------------------------------------------------------

    def _create_attachment(self, ctx):
        allowed = {"volume_uuid", "instance_uuid", "connector"}
        if ctx.version >= mv.ATTACHMENT_CREATE_MODE_ARG:
            allowed.add("mode")
        body = ctx.body_object("attachment", allowed=allowed)
        volume_id = body.get("volume_uuid")
        if volume_id is None:
            raise _invalid_field("attachment", body, "'volume_uuid' is a required property")
        if not isinstance(volume_id, str) or not _is_uuid(volume_id):
            raise _invalid_field("volume_uuid", volume_id, f"{volume_id!r} is not a 'uuid'")
        instance = body.get("instance_uuid")
        if "instance_uuid" in body and instance is None:
            # What openstacksdk sends for instance=None; Cinder's schema refuses it.
            raise _invalid_field("instance_uuid", None, "None is not of type 'string'")
        if instance is not None and (not isinstance(instance, str) or not _is_uuid(instance)):
            raise _invalid_field("instance_uuid", instance, f"{instance!r} is not a 'uuid'")
        connector = body.get("connector")
        if connector is not None and not isinstance(connector, dict):
            raise _invalid_field("connector", connector, f"{connector!r} is not of type "
                                                         "'object', 'null'")
        # Without a mode Cinder records the string "null" (the connector's
        # mode, else rw, then decides the access mode).
        mode = body.get("mode", "null")
        if "mode" in body and mode not in ("rw", "ro"):
            raise _invalid_field("mode", mode, f"{mode!r} is not one of ['rw', 'ro']")
        attachment = self._service.create_attachment(
            ctx.project_id, volume_id, instance_uuid=instance, connector=connector, mode=mode
        )
        return Response(200, {"attachment": _attachment_detail(attachment)})

    def _show_attachment(self, ctx, attachment_id):
        attachment = self._service.get_attachment(ctx.project_id, attachment_id)
        return Response(200, {"attachment": _attachment_detail(attachment)})

    def _list_attachments(self, ctx):
        return self._attachment_list(ctx, detail=False)

    def _list_attachments_detail(self, ctx):
        return self._attachment_list(ctx, detail=True)

    def _attachment_list(self, ctx, detail):
        attachments = self._service.list_attachments(ctx.project_id)
        wanted = {
            "volume_id": ctx.req.param("volume_id"),
            "status": ctx.req.param("status") or ctx.req.param("attach_status"),
            "instance_uuid": ctx.req.param("instance_id") or ctx.req.param("instance_uuid"),
        }
        attachments = [
            a for a in attachments
            if all(v is None or a[k] == v for k, v in wanted.items())
        ]
        attachments.sort(key=lambda a: (a["created_at"], a["id"]), reverse=True)
        page, next_marker = _paginate(attachments, ctx.req, "Attachment")
        view = _attachment_detail if detail else _attachment_summary
        body = {"attachments": [view(a) for a in page]}
        if next_marker is not None:
            path = "attachments/detail" if detail else "attachments"
            body["attachments_links"] = [self._next_link(ctx, path, next_marker)]
        return Response(200, body)

    def _update_attachment(self, ctx, attachment_id):
        before = self._service.get_attachment(ctx.project_id, attachment_id)["status"]
        body = ctx.body_object("attachment", allowed={"connector"})
        connector = body.get("connector")
        if not isinstance(connector, dict):
            raise _invalid_field("attachment", body, "'connector' is a required property")
        attachment = self._service.update_attachment(ctx.project_id, attachment_id, connector)
        # Cinder answers with the record it read before the update: the
        # connection info is new, the status the old one (e.g. reserved).
        return Response(200, {"attachment": _attachment_detail(dict(attachment, status=before))})

    def _attachment_action(self, ctx, attachment_id):
        body = ctx.body()
        if not isinstance(body, dict) or len(body) != 1:
            raise Invalid("Malformed request body")
        action = next(iter(body))
        if action != "os-complete":
            raise Invalid(f"There is no such action: {action}")
        self._service.complete_attachment(ctx.project_id, attachment_id)
        return Response(204)

    def _delete_attachment(self, ctx, attachment_id):
        remaining = self._service.delete_attachment(ctx.project_id, attachment_id)
        return Response(200, {"attachments": [_attachment_summary(a) for a in remaining]})

    # -- types ---------------------------------------------------------------

    def _list_types(self, ctx):
        return Response(200, {"volume_types": VOLUME_TYPES})

    def _default_type(self, ctx):
        return Response(200, {"volume_type": _find_type(DEFAULT_VOLUME_TYPE)})

    def _show_type(self, ctx, type_id):
        vtype = _find_type(type_id)
        if vtype is None:
            raise NotFound(f"Volume type {type_id} could not be found.")
        return Response(200, {"volume_type": vtype})

    # -- views ---------------------------------------------------------------

    def _links(self, ctx, collection, id_):
        return [
            {"href": f"{ctx.base_url}/volume/v3/{ctx.project_id}/{collection}/{id_}",
             "rel": "self"},
            {"href": f"{ctx.base_url}/volume/{ctx.project_id}/{collection}/{id_}",
             "rel": "bookmark"},
        ]

    def _next_link(self, ctx, path, marker):
        params = {k: v[-1] for k, v in ctx.req.query.items() if k not in ("marker",)}
        params["marker"] = marker
        query = "&".join(f"{k}={_quote(v)}" for k, v in params.items())
        return {"href": f"{ctx.base_url}/volume/v3/{ctx.project_id}/{path}?{query}",
                "rel": "next"}

    def _volume_detail(self, ctx, volume, attachments=None):
        if attachments is None:
            attachments = self._service.attachments_of(volume["id"])
        attachments = [
            {
                # Cinder really puts the *volume* id under "id" here.
                "id": volume["id"],
                "attachment_id": a["id"],
                "volume_id": volume["id"],
                "server_id": a["instance_uuid"],
                "host_name": a["attached_host"],
                "device": a["mountpoint"],
                "attached_at": a["attach_time"],
            }
            for a in attachments
            if a["status"] == "attached"
        ]
        vtype = _find_type(volume["volume_type"]) or {"id": None}
        view = {
            "id": volume["id"],
            "name": volume["name"],
            "description": volume["description"],
            "status": volume["status"],
            "size": volume["size"],
            "availability_zone": volume["availability_zone"],
            "created_at": volume["created_at"],
            "updated_at": volume["updated_at"],
            "attachments": attachments,
            "volume_type": volume["volume_type"],
            "snapshot_id": None,
            "source_volid": None,
            "metadata": volume["metadata"],
            "links": self._links(ctx, "volumes", volume["id"]),
            "user_id": volume["user_id"],
            "bootable": "true" if volume["bootable"] else "false",
            "encrypted": False,
            "replication_status": None,
            "consistencygroup_id": None,
            "multiattach": bool(volume.get("multiattach", False)),
            "migration_status": None,
            "os-vol-tenant-attr:tenant_id": volume["project_id"],
            # The devcloud user is admin, and Cinder shows admins these too.
            "os-vol-host-attr:host": HOST if volume["status"] != "creating" else None,
            "os-vol-mig-status-attr:migstat": None,
            "os-vol-mig-status-attr:name_id": None,
        }
        v = ctx.version
        if v >= mv.GROUP_VOLUME:
            view["group_id"] = None
        if v >= mv.VOLUME_DETAIL_PROVIDER_ID:
            view["provider_id"] = None
        if v >= mv.SHARED_TARGETS_AND_SERVICE_FIELDS:
            view["service_uuid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "devcloud-service"))
            view["shared_targets"] = False
        if v >= mv.VOLUME_CLUSTER_NAME:
            view["cluster_name"] = None
        if v >= mv.VOLUME_TYPE_ID_IN_VOLUME_DETAIL:
            view["volume_type_id"] = vtype["id"]
        if v >= mv.USE_QUOTA:
            view["consumes_quota"] = True
        return view


class _Context:
    """What a handler needs to know about the caller."""

    def __init__(self, req, project_id, user_id, version, base_url):
        self.req = req
        self.project_id = project_id
        self.user_id = user_id
        self.version = version
        self.base_url = base_url

    def body(self):
        try:
            return self.req.json()
        except (ValueError, UnicodeDecodeError):
            raise Invalid("Malformed request body") from None

    def body_object(self, key, allowed=None) -> dict:
        body = self.body()
        # Errors about the whole body name no field in Cinder's words.
        if not isinstance(body, dict):
            raise Invalid(f"{body!r} is not of type 'object'")
        if key not in body:
            raise Invalid(f"'{key}' is a required property")
        inner = body[key]
        if not isinstance(inner, dict):
            raise _invalid_field(key, inner, f"{inner!r} is not of type 'object'")
        if allowed is not None:
            extra = sorted(set(inner) - allowed)
            if extra:
                listed = ", ".join(repr(k) for k in extra)
                verb = "was" if len(extra) == 1 else "were"
                raise _invalid_field(
                    key, inner, f"Additional properties are not allowed ({listed} {verb} "
                                "unexpected)"
                )
        return inner


def _quote(value):
    return quote(str(value), safe="")


def _attachment_summary(a):
    return {"id": a["id"], "status": a["status"], "instance": a["instance_uuid"],
            "volume_id": a["volume_id"]}


def _attachment_detail(a):
    # Cinder's names (attached_at, detached_at, attach_mode), not the SDK's.
    return dict(
        _attachment_summary(a),
        attached_at=a["attach_time"] or "",
        detached_at=a["detach_time"] or "",
        attach_mode=a["attach_mode"],
        # {} until a connector came (a reservation), as Cinder shows it.
        connection_info=a["connection_info"] or {},
    )


def _optional_string(body, field, max_length, alias=None):
    value = body.get(field)
    if value is None and alias:
        value = body.get(alias)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid_field(field, value, f"{value!r} is not of type 'string', 'null'")
    if len(value) > max_length:
        raise _invalid_field(field, value, f"{value!r} is too long")
    return value


def _string_length(value, entity):
    """Cinder's *_non_mandatory_remove_white_spaces formats: at most 255 once stripped."""
    if value and len(value.strip()) > 255:
        raise Invalid(f"Invalid input received: {entity} has {len(value.strip())} characters, "
                      "more than 255.")


def _unexpected(keys) -> str:
    listed = ", ".join(repr(k) for k in keys)
    return f"Additional properties are not allowed ({listed} {'was' if len(keys) == 1 else 'were'} unexpected)"


def _volume_update(body, version) -> dict:
    """The changes a PUT /volumes/{id} asks for, validated as Cinder's schema does
    and in its order: the body, each field (type, then length), extra fields,
    then (from 3.53) that one field at least is there."""
    if not isinstance(body, dict):
        raise Invalid(f"{body!r} is not of type 'object'")
    if "volume" not in body:
        raise Invalid("'volume' is a required property")
    volume = body["volume"]
    if not isinstance(volume, dict):
        raise _invalid_field("volume", volume, f"{volume!r} is not of type 'object'")
    for field in _UPDATE_FIELDS[:4]:
        if field in volume:
            value = volume[field]
            if value is not None and not isinstance(value, str):
                raise _invalid_field(field, value, f"{value!r} is not of type 'string', 'null'")
            _string_length(value, "name" if field.endswith("name") else "description")
    if "metadata" in volume:
        _metadata(volume["metadata"])
    extra = [k for k in volume if k not in _UPDATE_FIELDS]
    if extra:
        raise _invalid_field("volume", volume, _unexpected(extra))
    if version >= SUPPORT_VOLUME_SCHEMA_CHANGES and not volume:
        raise _invalid_field("volume", volume, f"{volume!r} is not valid under any of the given "
                                               "schemas")
    extra = [k for k in body if k != "volume"]
    if extra:
        raise Invalid(_unexpected(extra))
    changes = {}
    # "name" wins over "display_name" (Cinder renames the one after the other).
    for field, aliases in (("name", ("display_name", "name")),
                           ("description", ("display_description", "description"))):
        for alias in aliases:
            if alias in volume:
                value = volume[alias]
                changes[field] = value.strip() if isinstance(value, str) else value
    if "metadata" in volume:
        changes["metadata"] = dict(volume["metadata"])
    return changes


def _volume_size(value, field="size"):
    if value is None:
        raise Invalid("Invalid input received: Volume size is required when not creating "
                      "from a snapshot, a volume, an image or a backup.")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _invalid_field(field, value, f"{value!r} is not of type 'integer', 'string'")
    if isinstance(value, str):
        if not value.isdigit():
            raise _invalid_field(field, value, f"{value!r} does not match '^[0-9]+$'")
        value = int(value)
    if value < 1:
        raise _invalid_field(field, value, f"{value} is less than the minimum of 1")
    if value > 2**31 - 1:
        raise _invalid_field(field, value, f"{value} is greater than the maximum of "
                                            f"{2**31 - 1}")
    return value


#: Cinder's parameter_types.extra_specs: the keys metadata may have.
_METADATA_KEY_PATTERN = "^[a-zA-Z0-9-_:. /]{1,255}$"


def _metadata(value, allow_null=False, field="metadata"):
    """Validate as Cinder's extra_specs schema does: values first (in the
    body's order), then every key its pattern refuses, sorted."""
    if value is None and allow_null:
        return None
    if not isinstance(value, dict):
        types = "'object', 'null'" if allow_null else "'object'"
        raise _invalid_field(field, value, f"{value!r} is not of type {types}")
    refused = []
    for key, item in value.items():
        if not re.search(_METADATA_KEY_PATTERN, key):
            refused.append(key)
        elif not isinstance(item, str):
            raise _invalid_field(key, item, f"{item!r} is not of type 'string'")
        elif len(item) > 255:
            raise _invalid_field(key, item, f"{item!r} is too long")
    if refused:
        verb = "does" if len(refused) == 1 else "do"
        joined = ", ".join(repr(k) for k in sorted(refused))
        raise _invalid_field(field, value, f"{joined} {verb} not match any of the regexes: "
                                           f"{_METADATA_KEY_PATTERN!r}")
    return value


def _parse_metadata_filter(text):
    """Cinder takes ``metadata={'k': 'v'}`` (a Python/JSON dict literal).

    Anything else (e.g. ``metadata=k``, which is what requests makes of a dict
    passed as a query parameter) is no error in Cinder: its database layer
    just matches no volume. None here means exactly that.
    """
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
    return None


# Cinder's default resource_filters.json for volumes, plus the paging and
# sorting parameters that are not filters at all.
_VOLUME_FILTERS = frozenset((
    "name", "status", "metadata", "bootable", "migration_status", "availability_zone",
    "group_id", "size", "created_at", "updated_at",
))
_LIST_PARAMETERS = frozenset(("limit", "marker", "offset", "sort", "sort_key", "sort_dir",
                              "with_count", "all_tenants"))


def _check_filter_keys(req):
    """From 3.34 Cinder refuses filters it does not know (``name~`` included)."""
    invalid = [k for k in req.query if k not in _VOLUME_FILTERS | _LIST_PARAMETERS]
    if invalid:
        raise Invalid(f"Invalid filters {','.join(invalid)} are found in query options.")


def _filter_volumes(volumes, req):
    name = req.param("name")
    status = req.param("status")
    zone = req.param("availability_zone")
    size = req.param("size")
    bootable = req.param("bootable")
    metadata = req.param("metadata")
    meta_filter = _parse_metadata_filter(metadata) if metadata else {}
    if meta_filter is None:
        return []
    result = []
    for v in volumes:
        if name is not None and v["name"] != name:
            continue
        if status is not None and v["status"] != status:
            continue
        if zone is not None and v["availability_zone"] != zone:
            continue
        if size is not None and str(v["size"]) != size:
            continue
        if bootable is not None and str(v["bootable"]).lower() != bootable.lower():
            continue
        if meta_filter and any(
            str(v["metadata"].get(k)) != str(val) or k not in v["metadata"]
            for k, val in meta_filter.items()
        ):
            continue
        result.append(v)
    return result


def _sort(volumes, req):
    """Cinder's default order is newest first; ``sort=key:dir,...`` overrides it."""
    keys = []
    if req.param("sort"):
        for item in req.param("sort").split(","):
            key, _, direction = item.strip().partition(":")
            keys.append((key, direction or "desc"))
    elif req.param("sort_key"):
        keys.append((req.param("sort_key"), req.param("sort_dir") or "desc"))
    keys = keys or [("created_at", "desc")]
    for key, direction in keys:
        if key not in _SORT_KEYS:
            raise Invalid(f"Invalid input received: Invalid sort key {key}")
        if direction not in ("asc", "desc"):
            raise Invalid(f"Invalid input received: Invalid sort direction {direction}")
    # Stable sorts applied last key first give a multi-key order; id breaks ties.
    result = sorted(volumes, key=lambda v: v["id"], reverse=keys[0][1] == "desc")
    for key, direction in reversed(keys):
        result.sort(key=lambda v, k=key: (v[k] is None, v[k] if v[k] is not None else ""),
                    reverse=direction == "desc")
    return result


def _paginate(items, req, kind):
    """One page after ``marker`` of at most ``limit`` items, and the next marker."""
    limit_text = req.param("limit")
    if limit_text is None:
        limit = MAX_LIMIT
    else:
        try:
            limit = int(limit_text)
        except ValueError:
            raise Invalid("limit param must be an integer") from None
        if limit < 0:
            raise Invalid("limit param must be positive")
        limit = min(limit, MAX_LIMIT)
    marker = req.param("marker")
    if marker is not None:
        ids = [i["id"] for i in items]
        if marker not in ids:
            raise NotFound(f"Marker {marker} could not be found.")
        items = items[ids.index(marker) + 1:]
    offset_text = req.param("offset")
    if offset_text:
        try:
            items = items[int(offset_text):]
        except ValueError:
            raise Invalid("offset param must be an integer") from None
    page = items[:limit]
    more = len(page) == limit and limit > 0 and (len(items) > limit or limit_text is not None)
    return page, (page[-1]["id"] if more else None)
