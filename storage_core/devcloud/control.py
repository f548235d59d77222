"""``/devcloud/...``: health, test knobs, request counts and extra servers for out-of-process tests.

Not part of any OpenStack API. There is no authentication: devcloud listens on
loopback by default and these knobs only make it fail or slow down on purpose.
"""

from storage_core.devcloud.latency import LatencyProfile
from storage_core.devcloud.web import Response


def _error(status, message):
    return Response(status, {"error": {"code": status, "message": message}})


class Control:
    def __init__(self, cloud):
        self._cloud = cloud

    def handle(self, req, subpath) -> Response:
        parts = [p for p in subpath.split("/") if p]
        if parts == ["health"] and req.method in ("GET", "HEAD"):
            return Response(200, {"status": "ok"})
        if parts == ["faults"]:
            faults = self._cloud.faults
            if req.method == "GET":
                return Response(200, {"faults": [f.to_dict() for f in faults.list()]})
            if req.method == "POST":
                try:
                    added = faults.add_many(req.json())
                except (ValueError, TypeError) as exc:
                    return _error(400, str(exc))
                return Response(201, {"faults": [f.to_dict() for f in added]})
            if req.method == "DELETE":
                faults.clear()
                return Response(204)
        if parts == ["operations"]:
            # Requests served per fault operation name ("volume.create" ...):
            # which of OPERATIONS a client's work reaches.
            if req.method == "GET":
                return Response(200, {"operations": self._cloud.faults.seen()})
            if req.method == "DELETE":
                self._cloud.faults.clear_seen()
                return Response(204)
        if parts == ["tokens", "expire"] and req.method == "POST":
            # Every token issued so far stops working, as if all had expired:
            # clients are refused with 401 and must authenticate again.
            if not self._cloud.faults.expire_tokens():
                return _error(409, "this cloud has no Keystone running")
            return Response(204)
        if parts == ["latency"]:
            if req.method == "GET":
                return Response(200, {"latency": self._cloud.latency.to_dict()})
            if req.method == "PUT":
                try:
                    self._cloud.latency = LatencyProfile.coerce(req.json())
                except (ValueError, TypeError) as exc:
                    return _error(400, str(exc))
                return Response(200, {"latency": self._cloud.latency.to_dict()})
        if parts == ["requests"]:
            # Requests served so far per "METHOD /path" (not counting /devcloud's own),
            # and the recent ones with their request ids; ?global_request_id=req-...
            # keeps those a client sent with that id.
            if req.method == "GET":
                log = self._cloud.requests
                return Response(200, {"requests": log.snapshot(),
                                      "recent": log.recent(req.param("global_request_id"))})
            if req.method == "DELETE":
                self._cloud.requests.clear()
                return Response(204)
        if parts == ["hypervisor"]:
            return self._hypervisor(req)
        if parts == ["servers"]:
            return self._servers(req)
        return _error(404, "The resource could not be found.")

    def _hypervisor(self, req):
        cloud = self._cloud
        if req.method == "GET":
            return Response(200, {"hypervisor": cloud.hypervisor_options.to_dict()})
        if req.method == "PUT":
            # Partial updates: only the fields given change.
            try:
                cloud.hypervisor_options = cloud.hypervisor_options.updated(req.json())
            except (ValueError, TypeError) as exc:
                return _error(400, str(exc))
            return Response(200, {"hypervisor": cloud.hypervisor_options.to_dict()})
        return _error(405, "Method not allowed.")

    def _servers(self, req):
        if req.method == "GET":
            local = self._cloud.local_server()["id"]
            servers = [_server(s, local) for s in self._cloud.servers()]
            return Response(200, {"servers": servers})
        if req.method == "POST":
            try:
                body = req.json()
            except ValueError as exc:
                return _error(400, f"expected a JSON object: {exc}")
            name = body.get("name") if isinstance(body, dict) else None
            if not isinstance(name, str) or not 1 <= len(name) <= 255:
                return _error(400, "a server needs a \"name\" of 1-255 characters")
            server = self._cloud.create_server(name)
            return Response(201, {"server": _server(server, None)})
        return _error(405, "Method not allowed.")


def _server(record, local_id):
    return {"id": record["id"], "name": record["name"], "host": record["host"],
            "local": record["id"] == local_id or bool(record.get("local"))}
