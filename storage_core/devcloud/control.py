"""``/devcloud/...``: health and test knobs for out-of-process tests.

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
        if parts == ["latency"]:
            if req.method == "GET":
                return Response(200, {"latency": self._cloud.latency.to_dict()})
            if req.method == "PUT":
                try:
                    self._cloud.latency = LatencyProfile.coerce(req.json())
                except (ValueError, TypeError) as exc:
                    return _error(400, str(exc))
                return Response(200, {"latency": self._cloud.latency.to_dict()})
        return _error(404, "The resource could not be found.")
