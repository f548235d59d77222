"""Cinder v3's backups API: routes, request validation and views.

The HTTP face of backups.py, served by cinder.BlockStorage beside the
volumes. Shapes follow Cinder 29's (cinder/api/contrib/backups.py, v3
backups.py and their view builders): create and update answer the summary
(id, name, links), GET the detail, with metadata from 3.43 and, for the
admin devcloud's user is, the project (3.18) and user (3.56) attributes;
restore answers ``{"restore": {backup_id, volume_id, volume_name}}``.
"""

from functools import partial

from storage_core.devcloud import microversion as mv
from storage_core.devcloud.backend import BackendFailure
from storage_core.devcloud.backups import RESETTABLE_STATUSES
from storage_core.devcloud.cinder import (
    AVAILABILITY_ZONE,
    DEFAULT_VOLUME_TYPE,
    _find_type,
    _is_multiattach_type,
)
from storage_core.devcloud.cinder_listing import (
    check_filter_keys,
    filter_records,
    links,
    list_answer,
)
from storage_core.devcloud.cinder_schema import (
    as_boolean,
    check_boolean,
    check_string,
    check_uuid,
    check_uuid_or_null,
    requested_status_reset,
    stripped,
    validated_metadata,
    validated_object,
)
from storage_core.devcloud.web import Response, Route

BACKUP_UPDATE = mv.APIVersion(3, 9)
BACKUP_PROJECT = mv.APIVersion(3, 18)
BACKUP_METADATA = mv.APIVersion(3, 43)
BACKUP_AZ = mv.APIVersion(3, 51)
BACKUP_PROJECT_USER_ID = mv.APIVersion(3, 56)
#: Cinder's default resource_filters.json for backups.
FILTERS = frozenset(("name", "status", "volume_id"))
_SERVER_ERROR = ("The server has either erred or is incapable of performing the requested "
                 "operation.")


def _metadata_or_null(value):
    validated_metadata(value, allow_null=True)  # raises in Cinder's words


def _create_fields(version) -> dict:
    fields = {
        "volume_id": check_uuid,
        "container": check_string(),
        "description": check_string(),
        "incremental": check_boolean,
        "force": check_boolean,
        "name": check_string(),
        "snapshot_id": check_uuid_or_null,
    }
    if version >= BACKUP_METADATA:
        fields["metadata"] = _metadata_or_null
    if version >= BACKUP_AZ:
        fields["availability_zone"] = check_string()
    return fields


class BackupsAPI:
    """Answers ``/volume/v3/{project}/backups...``."""

    def __init__(self, service):
        self._service = service

    def routes(self):
        r = Route
        return [
            r("GET", "backups", partial(self._listing, detail=False), "backup.list"),
            r("GET", "backups/detail", partial(self._listing, detail=True), "backup.list"),
            r("POST", "backups", self._create, "backup.create"),
            r("GET", "backups/*", self._show, "backup.get"),
            r("PUT", "backups/*", self._update, None, BACKUP_UPDATE),
            r("DELETE", "backups/*", self._delete, "backup.delete"),
            r("POST", "backups/*/restore", self._restore, "backup.restore"),
            # The admin's os-reset_status (no fault hook of its own).
            r("POST", "backups/*/action", self._action),
        ]

    def _create(self, ctx):
        body = validated_object(ctx.body(), "backup", _create_fields(ctx.version),
                                required=("volume_id",))
        backup = self._service.create_backup(
            ctx.project_id, ctx.user_id, body["volume_id"],
            name=stripped(body.get("name")), description=stripped(body.get("description")),
            container=body.get("container"),
            incremental=as_boolean(body.get("incremental", False)),
            force=as_boolean(body.get("force", False)),
            snapshot_id=body.get("snapshot_id"), metadata=body.get("metadata"),
            availability_zone=body.get("availability_zone"),
        )
        return Response(202, {"backup": _summary(ctx, backup)})

    def _show(self, ctx, backup_id):
        backup = self._service.get_backup(ctx.project_id, backup_id)
        return Response(200, {"backup": _detail(ctx, backup)})

    def _update(self, ctx, backup_id):
        fields = {"name": check_string(), "description": check_string()}
        if ctx.version >= BACKUP_METADATA:
            fields["metadata"] = lambda value: validated_metadata(value) and None
        body = validated_object(ctx.body(), "backup", fields, nullable=True)
        _null_is_a_crash(ctx.body(), "backup")
        changes = {k: stripped(body[k]) for k in ("name", "description") if k in body}
        if "metadata" in body:
            changes["metadata"] = dict(body["metadata"])
        backup = self._service.update_backup(ctx.project_id, backup_id, changes)
        return Response(200, {"backup": _summary(ctx, backup)})

    def _delete(self, ctx, backup_id):
        self._service.delete_backup(ctx.project_id, backup_id)
        return Response(202)

    def _restore(self, ctx, backup_id):
        body = validated_object(ctx.body(), "restore",
                                {"name": check_string(), "volume_id": check_uuid_or_null},
                                nullable=True)
        _null_is_a_crash(ctx.body(), "restore")
        vtype = _find_type(DEFAULT_VOLUME_TYPE)
        answer = self._service.restore(
            ctx.project_id, ctx.user_id, backup_id, volume_id=body.get("volume_id"),
            name=body.get("name"),
            new_volume={"volume_type": vtype["name"], "availability_zone": AVAILABILITY_ZONE,
                        "multiattach": _is_multiattach_type(vtype)},
        )
        return Response(202, {"restore": answer})

    def _action(self, ctx, backup_id):
        # Cinder's backup_status format check (its words, the statuses as a list).
        status = requested_status_reset(ctx.body(), RESETTABLE_STATUSES, "Backup",
                                        list(RESETTABLE_STATUSES))
        self._service.reset_status(ctx.project_id, backup_id, status)
        return Response(202)

    def _listing(self, ctx, detail):
        check_filter_keys(ctx, FILTERS)
        backups = filter_records(self._service.list_backups(ctx.project_id), ctx.req,
                                 ("name", "status", "volume_id"))
        view = _detail if detail else _summary
        return list_answer(ctx, "backups", backups, detail,
                           lambda page: [view(ctx, b) for b in page])


def _null_is_a_crash(body, key):
    """Cinder's schema lets ``{key: null}`` through, and its controller then
    fails on it (``None.get``): a 500, which a client had better meet here."""
    if body[key] is None:
        raise BackendFailure(_SERVER_ERROR)


def _summary(ctx, backup) -> dict:
    return {"id": backup["id"], "name": backup["name"],
            "links": links(ctx, "backups", backup["id"])}


def _detail(ctx, backup) -> dict:
    view = {
        "id": backup["id"],
        "status": backup["status"],
        "size": backup["size"],
        "object_count": backup["object_count"],
        "availability_zone": backup["availability_zone"],
        "container": backup["container"],
        "created_at": backup["created_at"],
        "updated_at": backup["updated_at"],
        "name": backup["name"],
        "description": backup["description"],
        "fail_reason": backup["fail_reason"],
        "volume_id": backup["volume_id"],
        "links": links(ctx, "backups", backup["id"]),
        "is_incremental": bool(backup["parent_id"]),
        "has_dependent_backups": bool(backup["num_dependent_backups"]),
        "snapshot_id": backup["snapshot_id"],
        "data_timestamp": backup["data_timestamp"],
    }
    if ctx.version >= BACKUP_METADATA:
        view["metadata"] = backup["metadata"]
    # Shown to admins (as devcloud's user is) by show and the detail list.
    if ctx.version >= BACKUP_PROJECT:
        view["os-backup-project-attr:project_id"] = backup["project_id"]
    if ctx.version >= BACKUP_PROJECT_USER_ID:
        view["user_id"] = backup["user_id"]
    return view
