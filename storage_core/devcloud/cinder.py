"""Cinder v3 API emulation: routing, request validation and Cinder's views.

Only the HTTP face lives here; what happens to volumes is backend.py. The
shapes follow Cinder's own view builders (volume detail/summary, attachment
detail/summary), request rules follow its JSON schemas, and availability of
calls follows its microversions (attachments at 3.27, os-complete at 3.44,
``mode`` at 3.54), so a client that works here works against Cinder.
Snapshots and backups have faces of their own (cinder_snapshots.py,
cinder_backups.py) served through the same routing; a volume made from a
snapshot, a volume or a backup is created here.
"""

import logging
import uuid
from functools import partial

from storage_core.devcloud import microversion as mv
from storage_core.devcloud.backend import CinderError, Invalid, NotFound, HOST, metadata_not_found
from storage_core.devcloud.cinder_listing import (
    check_filter_keys,
    links,
    list_answer,
    next_link,
    paginate,
    parse_metadata_filter,
)
from storage_core.devcloud.cinder_metadata import MetadataHandlers
from storage_core.devcloud.cinder_schema import (
    invalid_field,
    is_uuid,
    unexpected,
    validated_metadata,
)
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
_UPDATED = "2023-09-29T00:00:00Z"
_NOT_FOUND = "The resource could not be found."
#: From 3.53 a volume update must name at least one of these.
SUPPORT_VOLUME_SCHEMA_CHANGES = mv.APIVersion(3, 53)
#: From 3.47 a volume create's backup_id is checked (a UUID or null).
VOLUME_CREATE_FROM_BACKUP = mv.APIVersion(3, 47)
_UPDATE_FIELDS = ("name", "description", "display_name", "display_description", "metadata")
#: Cinder's volume-detail attributes that come from API extensions: shown by
#: GET (show and list), not in the answer of an update.
_EXTENSION_ATTRIBUTES = ("os-vol-tenant-attr:tenant_id", "os-vol-host-attr:host",
                         "os-vol-mig-status-attr:migstat", "os-vol-mig-status-attr:name_id")


def _is_multiattach_type(vtype) -> bool:
    # Cinder's scheduler-style "<is> True" boolean extra spec.
    return str(vtype["extra_specs"].get("multiattach", "")).lower() == "<is> true"


def _find_type(name_or_id):
    for vtype in VOLUME_TYPES:
        if name_or_id in (vtype["name"], vtype["id"]):
            return vtype
    return None


class BlockStorage(MetadataHandlers):
    """Answers ``/volume/...``."""

    _metadata_not_found = staticmethod(metadata_not_found)

    def __init__(self, service, identity, faults, base_url, extensions=()):
        """``extensions``: the faces of further collections (snapshots,
        backups: see cinder_snapshots.py, cinder_backups.py), each with a
        ``routes()`` list served here after the volumes' own."""
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
            *self.metadata_routes("volumes", "volume.metadata"),
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
        for extension in extensions:
            self._routes.extend(extension.routes())
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
        origins = {field: _optional_uuid(body, field) for field in ("snapshot_id", "source_volid")}
        # Cinder's schema has backup_id from 3.47, but its API reads it at
        # any version (unchecked before 3.47: not a uuid is just not found).
        origins["backup_id"] = (_optional_uuid(body, "backup_id")
                                if ctx.version >= VOLUME_CREATE_FROM_BACKUP
                                else body.get("backup_id") or None)
        if body.get("size") is None and any(v is not None for v in origins.values()):
            size = None  # the source's, below
        else:
            size = _volume_size(body.get("size"))
        metadata = validated_metadata(body.get("metadata"), allow_null=True) or {}
        for unsupported in ("imageRef", "image_id", "consistencygroup_id", "group_id"):
            if body.get(unsupported) is not None:
                raise Invalid(f"Invalid input received: devcloud cannot create a volume "
                              f"from {unsupported}.")
        if body.get("multiattach"):
            # Cinder's own words; devcloud's multiattach type is "multiattach".
            raise Invalid("multiattach parameter has been removed. The default behavior is to "
                          "use multiattach enabled volume types. Contact your administrator "
                          "to create a multiattach enabled volume type and use it to create "
                          "multiattach volumes.")
        vtype = None
        if body.get("volume_type"):
            vtype = _find_type(body["volume_type"])
            if vtype is None:
                raise NotFound(f"Volume type with name {body['volume_type']} could not be found.")
        zone = body.get("availability_zone") or AVAILABILITY_ZONE
        if zone != AVAILABILITY_ZONE:
            raise Invalid(f"Availability zone '{zone}' is invalid.")
        # What the volume is made of, looked up (404) in Cinder's order.
        sources = [(kind, self._origin(ctx, kind, origins[field]))
                   for field, kind in (("snapshot_id", "snapshot"), ("source_volid", "volume"),
                                       ("backup_id", "backup"))
                   if origins[field] is not None]
        if len(sources) > 1:
            raise Invalid("Invalid input received: May specify only one of backup, imageRef, "
                          "snapshot, source volume")
        source = None
        if sources:
            kind, record = sources[0]
            source = (kind, record["id"])
            if size is None:
                size = record["size"]
            if vtype is None and kind != "backup":
                # A copy keeps its source's type (a backup's: the default).
                vtype = _find_type(record["volume_type"])
        vtype = vtype or _find_type(DEFAULT_VOLUME_TYPE)
        volume = self._service.create_volume(
            ctx.project_id, ctx.user_id, name=name, description=description, size=size,
            metadata=metadata, volume_type=vtype["name"], availability_zone=zone,
            multiattach=_is_multiattach_type(vtype), source=source,
        )
        return Response(202, {"volume": self._volume_detail(ctx, volume)})

    def _origin(self, ctx, kind, origin_id):
        """The snapshot, volume or backup a new volume is made from (404s as Cinder's)."""
        if kind == "volume":
            return self._service.get_volume(ctx.project_id, origin_id)
        owner = self._service.snapshots if kind == "snapshot" else self._service.backups
        if owner is None:
            field = {"snapshot": "snapshot_id", "backup": "backup_id"}[kind]
            raise Invalid(f"Invalid input received: devcloud cannot create a volume from {field}.")
        getter = owner.get_snapshot if kind == "snapshot" else owner.get_backup
        return getter(ctx.project_id, origin_id)

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
        check_filter_keys(ctx, _VOLUME_FILTERS)
        volumes = _filter_volumes(self._service.list_volumes(ctx.project_id), ctx.req)
        render = self._volume_details if detail else _volume_summaries
        return list_answer(ctx, "volumes", volumes, detail, partial(render, ctx))

    def _volume_details(self, ctx, page):
        # One read of the attachments for the whole page, not one per volume.
        attached = self._service.attachments_by_volume()
        return [self._volume_detail(ctx, v, attached.get(v["id"], [])) for v in page]

    def _delete_volume(self, ctx, volume_id):
        for flag in ("cascade", "force"):
            value = ctx.req.param(flag)
            if value is not None and value.lower() not in ("true", "false", "0", "1",
                                                           "yes", "no", "on", "off"):
                raise Invalid(f"Invalid value '{value}' for {flag}.")
        cascade = (ctx.req.param("cascade") or "").lower() in ("true", "1", "yes", "on")
        self._service.delete_volume(ctx.project_id, volume_id, cascade=cascade)
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
            raise invalid_field("status", status, f"{status!r} is not one of {list(RESETTABLE_STATUSES)}")
        self._service.reset_status(ctx.project_id, volume_id, status)
        return Response(202)

    def _extend(self, ctx, volume_id, args):
        """os-extend: an available volume, or (from 3.42) an in-use one, grows;
        the backing file grows, and whoever holds its loop device refreshes it."""
        fault = apply_fault(self._faults, "volume.extend", cinder_error)
        if fault is not None:
            return fault
        if not isinstance(args, dict):
            raise invalid_field("os-extend", args, f"{args!r} is not of type 'object'")
        if "new_size" not in args:
            raise invalid_field("os-extend", args, "'new_size' is a required property")
        extra = [k for k in args if k != "new_size"]
        if extra:
            raise invalid_field("os-extend", args, unexpected(extra))
        new_size = _volume_size(args["new_size"], field="new_size")
        self._service.extend_volume(ctx.project_id, volume_id, new_size,
                                    in_use_allowed=ctx.version >= mv.VOLUME_EXTEND_INUSE)
        return Response(202)

    # Reading and deleting metadata: cinder_metadata.py.

    def _metadata_owner(self, ctx, volume_id):
        return self._service.get_volume(ctx.project_id, volume_id)

    def _update_metadata(self, ctx, volume_id, replace=False):
        self._service.get_volume(ctx.project_id, volume_id)  # 404 before 400
        body = ctx.body()
        if not isinstance(body, dict) or "metadata" not in body:
            raise Invalid("Malformed request body")
        metadata = validated_metadata(body["metadata"])
        new = self._service.update_metadata(ctx.project_id, volume_id, metadata, replace)
        return Response(200, {"metadata": new})

    def _set_metadata_item(self, ctx, volume_id, key):
        self._service.get_volume(ctx.project_id, volume_id)
        body = ctx.body()
        if not isinstance(body, dict) or not isinstance(body.get("meta"), dict):
            raise Invalid("Malformed request body")
        meta = validated_metadata(body["meta"], field="meta")
        if key not in meta:
            raise Invalid("Request body and URI mismatch")
        if len(meta) > 1:
            raise Invalid("Request body contains too many items")
        self._service.update_metadata(ctx.project_id, volume_id, meta, replace=False)
        return Response(200, {"meta": meta})

    # -- attachments ---------------------------------------------------------

    def _create_attachment(self, ctx):
        allowed = {"volume_uuid", "instance_uuid", "connector"}
        if ctx.version >= mv.ATTACHMENT_CREATE_MODE_ARG:
            allowed.add("mode")
        body = ctx.body_object("attachment", allowed=allowed)
        volume_id = body.get("volume_uuid")
        if volume_id is None:
            raise invalid_field("attachment", body, "'volume_uuid' is a required property")
        if not isinstance(volume_id, str) or not is_uuid(volume_id):
            raise invalid_field("volume_uuid", volume_id, f"{volume_id!r} is not a 'uuid'")
        instance = body.get("instance_uuid")
        if "instance_uuid" in body and instance is None:
            # What openstacksdk sends for instance=None; Cinder's schema refuses it.
            raise invalid_field("instance_uuid", None, "None is not of type 'string'")
        if instance is not None and (not isinstance(instance, str) or not is_uuid(instance)):
            raise invalid_field("instance_uuid", instance, f"{instance!r} is not a 'uuid'")
        connector = body.get("connector")
        if connector is not None and not isinstance(connector, dict):
            raise invalid_field("connector", connector, f"{connector!r} is not of type "
                                                        "'object', 'null'")
        # Without a mode Cinder records the string "null" (the connector's
        # mode, else rw, then decides the access mode).
        mode = body.get("mode", "null")
        if "mode" in body and mode not in ("rw", "ro"):
            raise invalid_field("mode", mode, f"{mode!r} is not one of ['rw', 'ro']")
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
        page, next_marker = paginate(attachments, ctx.req)
        view = _attachment_detail if detail else _attachment_summary
        body = {"attachments": [view(a) for a in page]}
        if next_marker is not None:
            path = "attachments/detail" if detail else "attachments"
            body["attachments_links"] = [next_link(ctx, path, next_marker)]
        return Response(200, body)

    def _update_attachment(self, ctx, attachment_id):
        before = self._service.get_attachment(ctx.project_id, attachment_id)["status"]
        body = ctx.body_object("attachment", allowed={"connector"})
        connector = body.get("connector")
        if not isinstance(connector, dict):
            raise invalid_field("attachment", body, "'connector' is a required property")
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
            "snapshot_id": volume.get("snapshot_id"),
            "source_volid": volume.get("source_volid"),
            "metadata": volume["metadata"],
            "links": links(ctx, "volumes", volume["id"]),
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
            view["consumes_quota"] = not volume.get("temporary")
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
            raise invalid_field(key, inner, f"{inner!r} is not of type 'object'")
        if allowed is not None:
            extra = sorted(set(inner) - allowed)
            if extra:
                listed = ", ".join(repr(k) for k in extra)
                verb = "was" if len(extra) == 1 else "were"
                raise invalid_field(
                    key, inner, f"Additional properties are not allowed ({listed} {verb} "
                                "unexpected)"
                )
        return inner


def _volume_summaries(ctx, page):
    return [{"id": v["id"], "name": v["name"], "links": links(ctx, "volumes", v["id"])}
            for v in page]


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
        raise invalid_field(field, value, f"{value!r} is not of type 'string', 'null'")
    if len(value) > max_length:
        raise invalid_field(field, value, f"{value!r} is too long")
    return value


def _optional_uuid(body, field):
    """Cinder's optional_uuid: null, or a string that is a UUID."""
    value = body.get(field)
    if value is not None and not (isinstance(value, str) and is_uuid(value)):
        raise invalid_field(field, value, f"{value!r} is not valid under any of the given "
                                          "schemas")
    return value


def _string_length(value, entity):
    """Cinder's *_non_mandatory_remove_white_spaces formats: at most 255 once stripped."""
    if value and len(value.strip()) > 255:
        raise Invalid(f"Invalid input received: {entity} has {len(value.strip())} characters, "
                      "more than 255.")


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
        raise invalid_field("volume", volume, f"{volume!r} is not of type 'object'")
    for field in _UPDATE_FIELDS[:4]:
        if field in volume:
            value = volume[field]
            if value is not None and not isinstance(value, str):
                raise invalid_field(field, value, f"{value!r} is not of type 'string', 'null'")
            _string_length(value, "name" if field.endswith("name") else "description")
    if "metadata" in volume:
        validated_metadata(volume["metadata"])
    extra = [k for k in volume if k not in _UPDATE_FIELDS]
    if extra:
        raise invalid_field("volume", volume, unexpected(extra))
    if version >= SUPPORT_VOLUME_SCHEMA_CHANGES and not volume:
        raise invalid_field("volume", volume, f"{volume!r} is not valid under any of the given "
                                              "schemas")
    extra = [k for k in body if k != "volume"]
    if extra:
        raise Invalid(unexpected(extra))
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
        raise invalid_field(field, value, f"{value!r} is not of type 'integer', 'string'")
    if isinstance(value, str):
        if not value.isdigit():
            raise invalid_field(field, value, f"{value!r} does not match '^[0-9]+$'")
        value = int(value)
    if value < 1:
        raise invalid_field(field, value, f"{value} is less than the minimum of 1")
    if value > 2**31 - 1:
        raise invalid_field(field, value, f"{value} is greater than the maximum of "
                                           f"{2**31 - 1}")
    return value


# Cinder's default resource_filters.json for volumes.
_VOLUME_FILTERS = frozenset((
    "name", "status", "metadata", "bootable", "migration_status", "availability_zone",
    "group_id", "size", "created_at", "updated_at",
))


def _filter_volumes(volumes, req):
    name = req.param("name")
    status = req.param("status")
    zone = req.param("availability_zone")
    size = req.param("size")
    bootable = req.param("bootable")
    metadata = req.param("metadata")
    meta_filter = parse_metadata_filter(metadata) if metadata else {}
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
