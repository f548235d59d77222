"""Manila (shared file systems v2) API emulation: shares, access rules, export locations.

Only the HTTP face lives here; the share service is shares.py. Shapes follow
Manila's views at the request's microversion, errors its faults (the same
``{"itemNotFound": {"code": 404, "message": ...}}`` shape Cinder uses), and
each message is the one Manila's controller gives for that call (checked
against manila 23, see contrib/realcloud): a share Manila's ``show``/
``delete`` cannot find is a bare 404 ("The resource could not be found."),
the access actions say "NotFound: Resource could not be found.", the export
locations "Share '<id>' not found.", the metadata calls "Share not found.".

Microversions: Manila honours only ``X-OpenStack-Manila-API-Version: 2.X``
(keystoneauth also sends ``OpenStack-API-Version: shared-file-system 2.X``,
which Manila ignores) and echoes it, even on a 406; no header means 2.0, and
"latest" is no version to Manila. Only ``/`` and the v2 document exist
(Manila's v1 API is gone); the v2 document wants a token.
"""

import ast
import uuid

from storage_core.devcloud import microversion as mv
from storage_core.devcloud.faults import apply_fault
from storage_core.devcloud.shares import (
    DEFAULT_AVAILABILITY_ZONE,
    DEFAULT_SHARE_TYPE_ID,
    DEFAULT_SHARE_TYPE_NAME,
    METADATA_ITEM_NOT_FOUND,
    SERVED_PROTOCOLS,
    ShareError,
    validate_access,
)
from storage_core.devcloud.web import Response, Route, cinder_error, find_route

LEGACY_HEADER = "X-OpenStack-Manila-API-Version"
MIN_VERSION = mv.APIVersion(2, 0)
MAX_VERSION = mv.APIVersion(2, 84)

# Microversions devcloud's behaviour depends on (named after Manila's views).
ACTIONS_WITHOUT_OS_PREFIX = mv.APIVersion(2, 7)
SHARE_TYPE_ID_FIELD = mv.APIVersion(2, 6)
EXPORT_LOCATIONS_API = mv.APIVersion(2, 9)
ACCESS_RULES_STATUS = mv.APIVersion(2, 10)
CEPHX_ACCESS = mv.APIVersion(2, 13)
PREFERRED_EXPORT = mv.APIVersion(2, 14)
ACCESS_KEY = mv.APIVersion(2, 21)
ACCESS_RULE_STATES = mv.APIVersion(2, 28)
ACCESS_TIMESTAMPS = mv.APIVersion(2, 33)
IPV6_ACCESS = mv.APIVersion(2, 38)
ACCESS_RULES_API = mv.APIVersion(2, 45)
ACCESS_ON_ERROR_SHARE = mv.APIVersion(2, 74)

_NOT_FOUND = "The resource could not be found."
# What Manila's fault wrapper makes of a NotFound raised below the controller.
_ACTION_NOT_FOUND = "NotFound: Resource could not be found."
_METADATA_SHARE_NOT_FOUND = "Share not found."
_TRANSITIONAL_RULE_STATES = ("queued_to_apply", "applying", "queued_to_deny", "denying")


class _Negotiator(mv.Negotiator):
    """Manila's own header only, echoed alone."""

    def requested_text(self, headers):
        legacy = mv._header(headers, self.legacy_header)
        return legacy.strip() if legacy else None

    def negotiate(self, headers):
        text = self.requested_text(headers)
        if text is not None and text.lower() == "latest":
            mv.APIVersion.parse(text)  # Manila has no "latest": invalid format
        return super().negotiate(headers)

    def response_headers(self, version):
        return {self.legacy_header: str(version), "Vary": self.legacy_header}


SHARE = _Negotiator("shared-file-system", LEGACY_HEADER, MIN_VERSION, MAX_VERSION)


class _Context:
    def __init__(self, req, version, base_url, project_id, user_id):
        self.req = req
        self.version = version
        self.base_url = base_url
        self.project_id = project_id
        self.user_id = user_id

    def json_body(self):
        try:
            body = self.req.json()
        except (ValueError, UnicodeDecodeError):
            raise ShareError(400, "Malformed request body") from None
        if not isinstance(body, dict):
            raise ShareError(400, "Malformed request body")
        return body


class SharedFileSystem:
    """Answers ``/share/...``."""

    def __init__(self, service, identity, faults, base_url):
        self._service = service
        self._identity = identity
        self._faults = faults
        self._base_url = base_url
        self._routes = [
            Route("GET", "shares", self._list_shares, "share.list"),
            Route("GET", "shares/detail", self._list_shares_detail, "share.list"),
            Route("POST", "shares", self._create_share, "share.create"),
            Route("GET", "shares/*", self._show_share, "share.get"),
            Route("PUT", "shares/*", self._update_share, "share.update"),
            Route("DELETE", "shares/*", self._delete_share, "share.delete"),
            Route("POST", "shares/*/action", self._action, None),
            Route("GET", "shares/*/metadata", self._get_metadata, "share.metadata"),
            Route("POST", "shares/*/metadata", self._merge_metadata, "share.metadata"),
            Route("PUT", "shares/*/metadata", self._replace_metadata, "share.metadata"),
            Route("GET", "shares/*/metadata/*", self._get_metadata_item, "share.metadata"),
            Route("DELETE", "shares/*/metadata/*", self._delete_metadata_item,
                  "share.metadata"),
            Route("GET", "shares/*/export_locations", self._list_export_locations,
                  "export_locations.list", EXPORT_LOCATIONS_API),
            Route("GET", "shares/*/export_locations/*", self._show_export_location,
                  "export_locations.get", EXPORT_LOCATIONS_API),
            Route("GET", "share-access-rules", self._list_access_rules, "access.list",
                  ACCESS_RULES_API),
            Route("GET", "share-access-rules/*", self._show_access_rule, "access.get",
                  ACCESS_RULES_API),
            Route("GET", "availability-zones", self._availability_zones, None),
            Route("GET", "types", self._share_types, None),
            Route("GET", "types/default", self._default_share_type, None),
        ]

    # -- entry ---------------------------------------------------------------

    def handle(self, req, subpath) -> Response:
        parts = [p for p in subpath.split("/") if p]
        if not parts:
            if req.method == "GET":
                # Manila answers its root, without a token, with 300 Multiple Choices.
                return Response(300, {"versions": [self._v2_doc()]})
            return cinder_error(404, _NOT_FOUND)
        if parts[0] != "v2":
            return cinder_error(404, _NOT_FOUND)
        rest = parts[1:]
        return self._serve_versioned(req, rest)

    def _serve_versioned(self, req, rest) -> Response:
        """Token, then microversion (Manila echoes even the one it refuses), then dispatch."""
        claims = self._identity.validate(req.headers.get("X-Auth-Token"))
        if claims is None:
            return self._identity.unauthorized()
        try:
            version = SHARE.negotiate(req.headers)
        except mv.VersionError as exc:
            resp = cinder_error(exc.status, exc.message)
            if exc.status == 406:
                resp.headers[LEGACY_HEADER] = SHARE.requested_text(req.headers)
            return resp
        resp = self._dispatch(req, rest, claims, version)
        resp.headers.update(SHARE.response_headers(version))
        return resp

    def _dispatch(self, req, rest, claims, version) -> Response:
        if not rest and req.method == "GET":
            return Response(200, {"versions": [self._v2_doc()]})
        # Old catalogs put the project id after v2; devstack's no longer does.
        url_project = None
        if rest and _is_project_segment(rest[0]):
            url_project, rest = rest[0], rest[1:]
            if not rest and req.method == "GET":
                return Response(200, {"versions": [self._v2_doc()]})
        route, args = find_route(self._routes, req.method, rest)
        if route is None:
            return cinder_error(404, _NOT_FOUND)
        if url_project is not None and url_project != claims.get("p"):
            return cinder_error(400, "Malformed request url")
        if not claims.get("p"):
            return cinder_error(403, "Policy doesn't allow this operation: a project "
                                     "scoped token is required.")
        if route.min_version is not None and version < route.min_version:
            # Manila has no route below the version a call appeared at.
            return cinder_error(404, _NOT_FOUND)
        if route.operation is not None:
            fault = apply_fault(self._faults, route.operation, cinder_error)
            if fault is not None:
                return fault
        ctx = _Context(req, version, self._base_url(), claims["p"], claims["u"])
        try:
            return route.handler(ctx, *args)
        except ShareError as exc:
            return cinder_error(exc.status, exc.message)

    def _v2_doc(self):
        return {
            "id": "v2.0",
            "status": "CURRENT",
            "version": str(SHARE.max_version),
            "min_version": str(SHARE.min_version),
            "updated": "2015-08-27T11:33:21Z",
            "links": [
                {"rel": "describedby", "type": "text/html",
                 "href": "http://docs.openstack.org/"},
                {"rel": "self", "href": f"{self._base_url()}/share/v2/"},
            ],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.share+json;version=1"}],
        }

    # -- shares --------------------------------------------------------------

    def _get(self, ctx, share_id, message=_NOT_FOUND):
        """The share, or Manila's 404 for the calling controller."""
        try:
            return self._service.get_share(ctx.project_id, share_id)
        except ShareError as exc:
            if exc.status == 404 and message is not None:
                raise ShareError(404, message.format(id=share_id)) from None
            raise

    def _list_shares(self, ctx):
        shares = self._filtered_shares(ctx)
        return Response(200, {"shares": [
            {"id": s["id"], "name": s["name"], "links": self._links(ctx, s["id"])}
            for s in shares]})

    def _list_shares_detail(self, ctx):
        shares = self._filtered_shares(ctx)
        return Response(200, {"shares": [self._share_view(ctx, s) for s in shares]})

    def _filtered_shares(self, ctx):
        req = ctx.req
        shares = self._service.list_shares(ctx.project_id)
        name = req.param("name", req.param("display_name"))
        if name is not None:
            shares = [s for s in shares if s["name"] == name]
        like = req.param("name~")
        if like is not None:
            shares = [s for s in shares if s["name"] and like.lower() in s["name"].lower()]
        for key, field in (("status", "status"), ("share_type_id", "share_type_id"),
                           ("share_network_id", "share_network_id"), ("host", "host")):
            wanted = req.param(key)
            if wanted is not None:
                shares = [s for s in shares if s.get(field) == wanted]
        metadata = req.param("metadata")
        if metadata is not None:
            wanted = _literal_dict(metadata, "metadata")
            shares = [s for s in shares
                      if all(s["metadata"].get(k) == v for k, v in wanted.items())]
        for key, field in (("export_location_id", "id"), ("export_location_path", "path")):
            wanted = req.param(key)
            if wanted is not None:
                shares = [s for s in shares
                          if any(e[field] == wanted for e in s.get("export_locations", []))]
        sort_key = req.param("sort_key", "created_at")
        sort_dir = req.param("sort_dir", "desc")
        if sort_dir not in ("asc", "desc"):
            raise ShareError(400, "Unknown sort direction, must be 'desc' or 'asc'")
        shares.sort(key=lambda s: (s.get(sort_key) is None, str(s.get(sort_key) or "")),
                    reverse=sort_dir == "desc")
        try:
            offset = int(req.param("offset", 0))
            limit = req.param("limit")
            limit = int(limit) if limit is not None else None
        except ValueError:
            raise ShareError(400, "limit and offset must be integers") from None
        if offset < 0 or (limit is not None and limit < 0):
            raise ShareError(400, "limit and offset must be >= 0")
        shares = shares[offset:]
        return shares if limit is None else shares[:limit]

    def _show_share(self, ctx, share_id):
        share = self._get(ctx, share_id)
        return Response(200, {"share": self._share_view(ctx, share)})

    def _create_share(self, ctx):
        try:
            body = ctx.json_body()
        except ShareError:
            body = None
        share = body.get("share") if isinstance(body, dict) else None
        if not isinstance(share, dict):
            raise ShareError(422, "Unable to process the contained instructions")
        name = share.get("name") or share.get("display_name")
        description = share.get("description") or share.get("display_description")
        for field, value in (("name", name), ("description", description)):
            if value is not None and (not isinstance(value, str) or len(value) > 255):
                raise ShareError(400, f"{field} has more than 255 characters.")
        proto = share.get("share_proto")
        if not isinstance(proto, str) or proto.upper() not in SERVED_PROTOCOLS:
            raise ShareError(400, f"Invalid input received: Invalid share protocol provided: "
                                  f"{proto}. It is either disabled or unsupported. Available "
                                  f"protocols: {list(SERVED_PROTOCOLS)}.")
        size = share.get("size")
        try:
            if isinstance(size, bool) or float(size) != int(size) or int(size) <= 0:
                raise ValueError(size)
            size = int(size)
        except (TypeError, ValueError):
            raise ShareError(400, f"Invalid input received: Share size '{size}' must be an "
                                  "integer and greater than 0.") from None
        metadata = share.get("metadata") or {}
        _check_metadata(metadata)
        az = share.get("availability_zone")
        if az and az != DEFAULT_AVAILABILITY_ZONE:
            raise ShareError(404, f"Availability zone {az} could not be found.")
        network = share.get("share_network_id")
        if network:
            raise ShareError(404, f"Share network {network} could not be found.")
        if "share_type" in share and "volume_type" in share:
            raise ShareError(400, "Cannot specify both share_type and volume_type")
        share_type = share.get("share_type", share.get("volume_type"))
        if share_type and share_type not in (DEFAULT_SHARE_TYPE_NAME, DEFAULT_SHARE_TYPE_ID):
            raise ShareError(404, "Share type not found.")
        is_public = share.get("is_public", False)
        if isinstance(is_public, str):
            is_public = is_public.strip().lower() in ("true", "1", "yes", "on", "y", "t")
        record = self._service.create_share(
            ctx.project_id, ctx.user_id, share_proto=proto.upper(), size=size, name=name,
            description=description, metadata=metadata, share_type_id=DEFAULT_SHARE_TYPE_ID,
            share_type_name=DEFAULT_SHARE_TYPE_NAME,
            availability_zone=az or None, is_public=bool(is_public))
        return Response(200, {"share": self._share_view(ctx, record)})

    def _update_share(self, ctx, share_id):
        body = ctx.json_body()
        data = body.get("share")
        if not isinstance(data, dict):
            raise ShareError(422, "Unable to process the contained instructions")
        self._get(ctx, share_id)
        changes = {}
        for key, field in (("display_name", "name"), ("name", "name"),
                           ("display_description", "description"),
                           ("description", "description"), ("is_public", "is_public")):
            if key in data:
                changes[field] = data[key]
        share = self._service.update_share(ctx.project_id, share_id, changes)
        return Response(200, {"share": self._share_view(ctx, share)})

    def _delete_share(self, ctx, share_id):
        self._get(ctx, share_id)
        self._service.delete_share(ctx.project_id, share_id)
        return Response(202)

    def _links(self, ctx, share_id):
        return [
            {"rel": "self", "href": f"{ctx.base_url}/share/v2/shares/{share_id}"},
            {"rel": "bookmark", "href": f"{ctx.base_url}/share/shares/{share_id}"},
        ]

    def _share_view(self, ctx, share):
        """Manila's share detail view at the request's version (admin user)."""
        v = ctx.version
        paths = [e["path"] for e in share.get("export_locations", [])]
        view = {
            "id": share["id"],
            "size": share["size"],
            "availability_zone": share["availability_zone"],
            "created_at": share["created_at"],
            "status": share["status"],
            "name": share["name"],
            "description": share["description"],
            "project_id": share["project_id"],
            "snapshot_id": None,
            "share_network_id": share["share_network_id"],
            "share_proto": share["share_proto"],
            "metadata": dict(share["metadata"]),
            "links": self._links(ctx, share["id"]),
            "is_public": share["is_public"],
            "share_server_id": None,
            "host": share["host"],
        }
        # volume_type (the old name) stays in the view at every version.
        view["volume_type"] = share["share_type_name"]
        if v >= SHARE_TYPE_ID_FIELD:
            view["share_type"] = share["share_type_id"]
            view["share_type_name"] = share["share_type_name"]
        else:
            view["share_type"] = share["share_type_name"]
        if v < EXPORT_LOCATIONS_API:
            view["export_location"] = paths[0] if paths else None
            view["export_locations"] = paths
        if v >= mv.APIVersion(2, 2):
            view["snapshot_support"] = False
        if v >= mv.APIVersion(2, 5):
            view["task_state"] = None
        if v >= ACCESS_RULES_STATUS:
            status = share["access_rules_status"]
            if v < ACCESS_RULE_STATES and status == "syncing":
                status = "out_of_sync"
            view["access_rules_status"] = status
        for since, key, value in ((11, "replication_type", None), (11, "has_replicas", False),
                                  (16, "user_id", share["user_id"]),
                                  (24, "create_share_from_snapshot_support", False),
                                  (27, "revert_to_snapshot_support", False),
                                  (31, "share_group_id", None),
                                  (31, "source_share_group_snapshot_member_id", None),
                                  (32, "mount_snapshot_support", False),
                                  (69, "is_soft_deleted", False),
                                  (69, "scheduled_to_be_deleted_at", None),
                                  (80, "source_backup_id", None)):
            if v >= mv.APIVersion(2, since):
                view[key] = value
        if v >= mv.APIVersion(2, 54):
            # Null until the driver created the share, then "100%" for good
            # (state written by an older devcloud has no such field).
            view["progress"] = share.get(
                "progress", "100%" if share["status"] == "available" else None)
        return view

    # -- metadata ------------------------------------------------------------
    # (manila 23 has no PUT of a single item on shares: POST merges instead)

    def _metadata_body(self, ctx):
        body = ctx.json_body()
        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            raise ShareError(400, "Malformed request body")
        _check_metadata(metadata)
        return metadata

    def _get_metadata(self, ctx, share_id):
        share = self._get(ctx, share_id, _METADATA_SHARE_NOT_FOUND)
        return Response(200, {"metadata": dict(share["metadata"])})

    def _merge_metadata(self, ctx, share_id):
        metadata = self._metadata_body(ctx)  # Manila checks the body first
        self._get(ctx, share_id, _METADATA_SHARE_NOT_FOUND)
        new = self._service.update_metadata(ctx.project_id, share_id, metadata, replace=False)
        return Response(200, {"metadata": new})

    def _replace_metadata(self, ctx, share_id):
        metadata = self._metadata_body(ctx)
        self._get(ctx, share_id, _METADATA_SHARE_NOT_FOUND)
        new = self._service.update_metadata(ctx.project_id, share_id, metadata, replace=True)
        return Response(200, {"metadata": new})

    def _get_metadata_item(self, ctx, share_id, key):
        share = self._get(ctx, share_id, _METADATA_SHARE_NOT_FOUND)
        if key not in share["metadata"]:
            raise ShareError(404, METADATA_ITEM_NOT_FOUND)
        return Response(200, {"meta": {key: share["metadata"][key]}})

    def _delete_metadata_item(self, ctx, share_id, key):
        self._get(ctx, share_id, _METADATA_SHARE_NOT_FOUND)
        self._service.delete_metadata_item(ctx.project_id, share_id, key)
        return Response(200)

    # -- actions -------------------------------------------------------------

    def _action(self, ctx, share_id):
        body = ctx.json_body()
        if len(body) != 1:
            raise ShareError(400, "Malformed request body")
        [(name, args)] = body.items()
        prefixed = ctx.version < ACTIONS_WITHOUT_OS_PREFIX
        actions = {
            "allow_access": (self._allow_access, "access.create"),
            "deny_access": (self._deny_access, "access.delete"),
            "access_list": (self._access_list, "access.list"),
            "force_delete": (self._force_delete, "share.delete"),
            "extend": (self._extend, "share.extend"),
        }
        key = name[3:] if name.startswith("os-") else name
        if key not in actions:
            raise ShareError(400, f"There is no such action: {name}")
        if prefixed != name.startswith("os-"):
            # Manila has both names, each bound to its own version range:
            # outside it the action does not exist.
            raise ShareError(404, _NOT_FOUND)
        handler, operation = actions[key]
        fault = apply_fault(self._faults, operation, cinder_error)
        if fault is not None:
            return fault
        return handler(ctx, share_id, args)

    def _allow_access(self, ctx, share_id, args):
        if not isinstance(args, dict):
            raise ShareError(400, "Malformed request body")
        share = self._get(ctx, share_id, _ACTION_NOT_FOUND)
        if ctx.version < ACCESS_RULE_STATES and share["access_rules_status"] == "error":
            # From 2.28 on a rule in error no longer blocks new ones.
            raise ShareError(400, "Access rules cannot be added while the share or any of its "
                                  "replicas or migration copies has its access_rules_status "
                                  "set to error. Deny any rules in error state and try again.")
        try:
            access_type = args["access_type"]
            access_to = args["access_to"]
        except KeyError as exc:
            raise ShareError(400, f"Invalid input received: {exc.args[0]} is required.") from None
        validate_access(access_type, access_to,
                        enable_ceph=ctx.version >= CEPHX_ACCESS,
                        enable_ipv6=ctx.version >= IPV6_ACCESS)
        metadata = args.get("metadata") if ctx.version >= ACCESS_RULES_API else None
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise ShareError(400, "Malformed request body")
            _check_metadata(metadata)
        rule = self._service.allow_access(
            ctx.project_id, share_id, access_type=access_type, access_to=access_to,
            access_level=args.get("access_level"), metadata=metadata,
            allow_on_error_state=ctx.version >= ACCESS_ON_ERROR_SHARE)
        return Response(200, {"access": self._rule_view(ctx, rule, with_share_id=True)})

    def _deny_access(self, ctx, share_id, args):
        if not isinstance(args, dict) or "access_id" not in args:
            raise ShareError(400, "Malformed request body")
        self._get(ctx, share_id, _ACTION_NOT_FOUND)
        self._service.deny_access(ctx.project_id, share_id, args["access_id"])
        return Response(202)

    def _access_list(self, ctx, share_id, _args):
        self._get(ctx, share_id, _ACTION_NOT_FOUND)
        rules = self._service.rules_of(share_id)
        return Response(200, {"access_list": [self._rule_view(ctx, r) for r in rules]})

    def _extend(self, ctx, share_id, args):
        self._get(ctx, share_id)
        try:
            new_size = int(args["new_size"])
        except (KeyError, ValueError, TypeError):
            raise ShareError(400, "New share size must be specified as an integer.") from None
        self._service.extend_share(ctx.project_id, share_id, new_size)
        return Response(202)

    def _force_delete(self, ctx, share_id, _args):
        self._get(ctx, share_id)
        self._service.delete_share(ctx.project_id, share_id, force=True)
        return Response(202)

    # -- access rules (2.45+) ------------------------------------------------

    def _list_access_rules(self, ctx):
        share_id = ctx.req.param("share_id")
        if share_id is None:
            raise ShareError(400, "The field 'share_id' has to be specified.")
        try:
            self._service.get_share(ctx.project_id, share_id)
        except ShareError:
            raise ShareError(400, f"Share {share_id} not found.") from None
        rules = self._service.rules_of(share_id)
        for key in ("access_type", "access_to", "access_level", "state"):
            wanted = ctx.req.param(key)
            if wanted is not None:
                rules = [r for r in rules if r[key] == wanted]
        metadata = ctx.req.param("metadata")
        if metadata is not None:
            wanted = _literal_dict(metadata, "metadata")
            rules = [r for r in rules
                     if all(r["metadata"].get(k) == v for k, v in wanted.items())]
        return Response(200, {"access_list": [self._rule_view(ctx, r) for r in rules]})

    def _show_access_rule(self, ctx, access_id):
        rule = self._service.get_rule(ctx.project_id, access_id)
        if rule is None:
            raise ShareError(404, f"Share access rule {access_id} not found.")
        return Response(200, {"access": self._rule_view(ctx, rule, with_share_id=True)})

    def _rule_view(self, ctx, rule, with_share_id=False):
        v = ctx.version
        view = {"id": rule["id"]}
        if with_share_id:
            view["share_id"] = rule["share_id"]
        view.update(access_level=rule["access_level"], access_to=rule["access_to"],
                    access_type=rule["access_type"], state=rule["state"])
        if v >= ACCESS_KEY:
            view["access_key"] = rule["access_key"]
        if v < ACCESS_RULE_STATES:
            # Before 2.28 a rule shows its share's access_rules_status.
            share = self._service.get_share(ctx.project_id, rule["share_id"])
            status = share["access_rules_status"]
            view["state"] = "new" if status == "syncing" else status
        if v >= ACCESS_TIMESTAMPS:
            view["created_at"] = rule["created_at"]
            view["updated_at"] = rule["updated_at"]
        if v >= ACCESS_RULES_API:
            view["metadata"] = dict(rule["metadata"])
        return view

    # -- export locations (2.9+) ---------------------------------------------

    def _list_export_locations(self, ctx, share_id):
        share = self._get(ctx, share_id, "Share '{id}' not found.")
        return Response(200, {"export_locations": [
            self._export_view(ctx, share, e) for e in share.get("export_locations", [])]})

    def _show_export_location(self, ctx, share_id, export_id):
        share = self._get(ctx, share_id, "Share '{id}' not found.")
        for export in share.get("export_locations", []):
            if export["id"] == export_id:
                return Response(200, {"export_location": self._export_view(
                    ctx, share, export, detail=True)})
        raise ShareError(404, f"Export location '{export_id}' not found.")

    def _export_view(self, ctx, share, export, detail=False):
        view = {"id": export["id"], "path": export["path"]}
        if ctx.version >= PREFERRED_EXPORT:
            view["preferred"] = export["preferred"]
        # The devcloud user is admin, and Manila shows admins these.
        view["share_instance_id"] = share["instance_id"]
        view["is_admin_only"] = export["is_admin_only"]
        if detail:
            view["created_at"] = export["created_at"]
            view["updated_at"] = export["updated_at"]
        return view

    # -- small read-only catalogues -----------------------------------------

    def _availability_zones(self, ctx):
        zone_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "devcloud-az-nova"))
        return Response(200, {"availability_zones": [{
            "id": zone_id, "name": DEFAULT_AVAILABILITY_ZONE,
            "created_at": "2026-01-01T00:00:00.000000", "updated_at": None}]})

    def _share_type_view(self):
        specs = {"driver_handles_share_servers": "False", "snapshot_support": "False"}
        return {"id": DEFAULT_SHARE_TYPE_ID, "name": DEFAULT_SHARE_TYPE_NAME,
                "extra_specs": specs, "required_extra_specs": {
                    "driver_handles_share_servers": "False"},
                "share_type_access:is_public": True, "is_default": True,
                "description": None}

    def _share_types(self, ctx):
        return Response(200, {"share_types": [self._share_type_view()],
                              "volume_types": [self._share_type_view()]})

    def _default_share_type(self, ctx):
        return Response(200, {"share_type": self._share_type_view(),
                              "volume_type": self._share_type_view()})


def _is_project_segment(segment) -> bool:
    known = {"shares", "share-access-rules", "availability-zones", "types"}
    return segment not in known and len(segment) in (32, 36)


def _literal_dict(text, name) -> dict:
    # Manila deserialises dict filters with ast.literal_eval.
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ShareError(400, f"Invalid {name} filter {text!r}: expected a dict literal "
                              "such as {'key': 'value'}.") from None
    if not isinstance(value, dict):
        raise ShareError(400, f"Invalid {name} filter {text!r}: expected a dict literal.")
    return {str(k): str(v) for k, v in value.items()}


def _check_metadata(metadata):
    """manila.api.common.check_metadata_properties."""
    if not isinstance(metadata, dict):
        raise ShareError(400, "Invalid metadata: metadata must be an object.")
    for key, value in metadata.items():
        if not key:
            raise ShareError(400, "Metadata property key is blank.")
        if len(key) > 255:
            raise ShareError(413, "Metadata property key is greater than 255 characters.")
        if not isinstance(value, str) or not value:
            raise ShareError(400, "Metadata property value is blank.")
        if len(value) > 1023:
            raise ShareError(413, "Metadata property value is greater than 1023 characters.")
