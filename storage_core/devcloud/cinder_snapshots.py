"""Cinder v3's snapshots API: routes, request validation and views.

The HTTP face of snapshots.py, served by cinder.BlockStorage beside the
volumes. Shapes follow Cinder 29's (cinder/api/v3/snapshots.py, its view
builders, snapshot_metadata.py): the detail view grows with the microversion
(group_snapshot_id at 3.14, user_id at 3.41, consumes_quota at 3.65), GET
(show and detail list) adds the os-extended-snapshot-attributes (project_id,
progress), which neither create nor update answers show; the summary list
shows the base fields only. Snapshotting an in-use volume needs
``force=true`` below 3.66; from 3.66 it is allowed, and ``force=false`` is
refused.
"""

from functools import partial

from storage_core.devcloud import microversion as mv
from storage_core.devcloud.backend import Invalid
from storage_core.devcloud.cinder_listing import check_filter_keys, filter_records, list_answer
from storage_core.devcloud.cinder_metadata import MetadataHandlers
from storage_core.devcloud.cinder_schema import (
    as_boolean,
    check_boolean,
    check_string,
    check_uuid_or_null,
    invalid_field,
    requested_status_reset,
    stripped,
    validated_metadata,
    validated_object,
)
from storage_core.devcloud.snapshots import STATUSES, metadata_not_found
from storage_core.devcloud.web import Response, Route

GROUP_SNAPSHOTS = mv.APIVersion(3, 14)
SNAPSHOT_LIST_METADATA_FILTER = mv.APIVersion(3, 22)
SNAPSHOT_LIST_USER_ID = mv.APIVersion(3, 41)
SNAPSHOT_IN_USE = mv.APIVersion(3, 66)
# Cinder's words, double space and "compatability" included.
SNAPSHOT_IN_USE_FLAG_MSG = (
    "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward "
    "compatability, however, when the 'force' flag is passed with a value evaluating to "
    "True, it is silently ignored."
)
#: Snapshot metadata keys: the volume's pattern without "/".
METADATA_KEY_PATTERN = "^[a-zA-Z0-9-_:. ]{1,255}$"
#: Cinder's default resource_filters.json for snapshots.
FILTERS = frozenset(("name", "status", "volume_id", "metadata", "availability_zone",
                     "consumes_quota"))
_ATTRIBUTES = "os-extended-snapshot-attributes"

_CREATE_FIELDS = {
    "name": check_string(),
    "display_name": check_string(),
    "description": check_string(),
    "volume_id": check_uuid_or_null,
    "force": check_boolean,
    "metadata": lambda value: validated_metadata(value, allow_null=True) and None,
}
_UPDATE_FIELDS = {
    "name": check_string(),
    "description": check_string(),
    "display_name": check_string(),
    "display_description": check_string(),
}


class SnapshotsAPI(MetadataHandlers):
    """Answers ``/volume/v3/{project}/snapshots...``."""

    _metadata_not_found = staticmethod(metadata_not_found)

    def __init__(self, service, volumes):
        self._service = service
        self._volumes = volumes

    def routes(self):
        r = Route
        return [
            r("GET", "snapshots", partial(self._listing, detail=False), "snapshot.list"),
            r("GET", "snapshots/detail", partial(self._listing, detail=True), "snapshot.list"),
            r("POST", "snapshots", self._create, "snapshot.create"),
            r("GET", "snapshots/*", self._show, "snapshot.get"),
            r("PUT", "snapshots/*", self._update),
            r("DELETE", "snapshots/*", self._delete, "snapshot.delete"),
            # The admin's os-reset_status (no fault hook of its own).
            r("POST", "snapshots/*/action", self._action),
        ] + self.metadata_routes("snapshots")

    # -- snapshots -----------------------------------------------------------

    def _create(self, ctx):
        body = validated_object(ctx.body(), "snapshot", _CREATE_FIELDS, required=("volume_id",))
        volume_id = body["volume_id"]
        self._volumes.get_volume(ctx.project_id, volume_id)  # 404 first
        force = as_boolean(body["force"]) if body.get("force") is not None else None
        if force is False and ctx.version >= SNAPSHOT_IN_USE:
            raise Invalid(SNAPSHOT_IN_USE_FLAG_MSG)
        name = stripped(body["name"] if "name" in body else body.get("display_name"))
        snapshot = self._service.create_snapshot(
            ctx.project_id, ctx.user_id, volume_id, name=name,
            description=stripped(body.get("description")), metadata=body.get("metadata"),
            in_use_allowed=bool(force) or ctx.version >= SNAPSHOT_IN_USE,
        )
        return Response(202, {"snapshot": _detail(ctx, snapshot, extended=False)})

    def _show(self, ctx, snapshot_id):
        snapshot = self._service.get_snapshot(ctx.project_id, snapshot_id)
        return Response(200, {"snapshot": _detail(ctx, snapshot, extended=True)})

    def _update(self, ctx, snapshot_id):
        # Cinder validates the body before it looks the snapshot up.
        body = validated_object(ctx.body(), "snapshot", _UPDATE_FIELDS)
        if not body:
            raise invalid_field("snapshot", body, f"{body!r} is not valid under any of the "
                                                  "given schemas")
        changes = {}
        # "name" wins over "display_name", "description" over "display_description".
        for field in ("display_name", "name", "display_description", "description"):
            if field in body:
                changes["name" if field.endswith("name") else "description"] = stripped(body[field])
        snapshot, before = self._service.update_snapshot(ctx.project_id, snapshot_id, changes)
        # Cinder answers with the snapshot it read before saving: its old stamp.
        return Response(200, {"snapshot": dict(_detail(ctx, snapshot, extended=False),
                                               updated_at=before)})

    def _delete(self, ctx, snapshot_id):
        self._service.delete_snapshot(ctx.project_id, snapshot_id)
        return Response(202)

    def _action(self, ctx, snapshot_id):
        # Cinder's snapshot_status format check (its words, not its tuple's repr).
        status = requested_status_reset(ctx.body(), STATUSES, "Snapshot", STATUSES)
        self._service.reset_status(ctx.project_id, snapshot_id, status)
        return Response(202)

    def _listing(self, ctx, detail):
        check_filter_keys(ctx, FILTERS)
        if ctx.req.param("availability_zone") not in (None, "nova"):
            snapshots = []  # every volume (so every snapshot) is in "nova"
        else:
            snapshots = filter_records(
                self._service.list_snapshots(ctx.project_id), ctx.req,
                ("name", "status", "volume_id"),
                # Below 3.22 Cinder drops a metadata filter without a word.
                metadata=ctx.version >= SNAPSHOT_LIST_METADATA_FILTER)
        view = partial(_detail, ctx, extended=True) if detail else _summary
        return list_answer(ctx, "snapshots", snapshots, detail,
                           lambda page: [view(s) for s in page])

    # -- metadata (reads and deletes: cinder_metadata.py) ---------------------

    def _metadata_owner(self, ctx, snapshot_id):
        return self._service.get_snapshot(ctx.project_id, snapshot_id)

    def _update_metadata(self, ctx, snapshot_id, replace=False):
        # Cinder's schema first (400), then the snapshot (404).
        body = ctx.body()
        if not isinstance(body, dict):
            raise Invalid(f"{body!r} is not of type 'object'")
        if "metadata" in body:
            validated_metadata(body["metadata"], pattern=METADATA_KEY_PATTERN)
        else:
            raise Invalid("'metadata' is a required property")
        new = self._service.update_metadata(ctx.project_id, snapshot_id, body["metadata"],
                                            replace)
        return Response(200, {"metadata": new})

    def _set_metadata_item(self, ctx, snapshot_id, key):
        body = ctx.body()
        if not isinstance(body, dict):
            raise Invalid(f"{body!r} is not of type 'object'")
        if "meta" not in body:
            raise Invalid("'meta' is a required property")
        meta = validated_metadata(body["meta"], field="meta", pattern=METADATA_KEY_PATTERN)
        if not meta:
            raise invalid_field("meta", meta, f"{meta!r} should be non-empty")
        if len(meta) > 1:
            raise invalid_field("meta", meta, f"{meta!r} has too many properties")
        if key not in meta:
            raise Invalid("Request body and URI mismatch")
        self._service.update_metadata(ctx.project_id, snapshot_id, meta, replace=False)
        return Response(200, {"meta": meta})


def _summary(snapshot) -> dict:
    return {
        "id": snapshot["id"],
        "created_at": snapshot["created_at"],
        "updated_at": snapshot["updated_at"],
        "name": snapshot["name"],
        "description": snapshot["description"],
        "volume_id": snapshot["volume_id"],
        "status": snapshot["status"],
        "size": snapshot["size"],
        "metadata": snapshot["metadata"],
    }


def _detail(ctx, snapshot, extended) -> dict:
    """Cinder's v3 detail view; ``extended``: with the extension's attributes
    (GET only)."""
    view = _summary(snapshot)
    if ctx.version >= GROUP_SNAPSHOTS:
        view["group_snapshot_id"] = None
    if ctx.version >= SNAPSHOT_LIST_USER_ID:
        view["user_id"] = snapshot["user_id"]
    if ctx.version >= mv.USE_QUOTA:
        view["consumes_quota"] = True
    if extended:
        view[f"{_ATTRIBUTES}:project_id"] = snapshot["project_id"]
        view[f"{_ATTRIBUTES}:progress"] = snapshot["progress"]
    return view
