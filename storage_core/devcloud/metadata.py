"""The OpenStack metadata service, for the local server, on devcloud's port.

A real guest asks http://169.254.169.254/openstack/latest/meta_data.json
without any credentials (Neutron's proxy adds who is asking); here the
answer is about the local server unless an ``X-Instance-ID`` header names
another one. The same document is written to the config drive
(hypervisor.py) after every attach and detach; a real config drive is built
once at boot, refreshing it is a convenience for tests.

As in Nova, ``devices`` lists only disks attached with a ``tag`` (device
role tagging, compute API 2.49+): an untagged volume is not in it.
"""

import json

from storage_core.devcloud.web import Response

# The metadata versions a current Nova lists, oldest first.
VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
            "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14", "latest")
FILES = ("meta_data.json", "network_data.json", "vendor_data.json", "vendor_data2.json")
AVAILABILITY_ZONE = "nova"


def meta_data(server, bdms) -> dict:
    """meta_data.json of ``server`` with its attachments ``bdms``."""
    devices = [
        {
            "type": "disk",
            # Nova names the bus of the address: a virtio-blk disk sits on PCI.
            "bus": "pci",
            "serial": bdm["volume_id"],
            "address": bdm["pci_address"],
            "tags": [bdm["tag"]],
        }
        for bdm in bdms
        if bdm["plugged"] and bdm.get("tag")
    ]
    return {
        "uuid": server["id"],
        "meta": {},
        "hostname": server["hostname"],
        "name": server["name"],
        "launch_index": 0,
        "availability_zone": AVAILABILITY_ZONE,
        "project_id": server["project_id"],
        "devices": devices,
        "dedicated_cpus": [],
    }


def _text(lines):
    return Response(200, "\n".join(lines))


def _not_found():
    # The metadata API's 404 is a bare page, not an OpenStack fault body.
    return Response(404, "404 Not Found\n\nThe resource could not be found.\n\n   ")


class MetadataService:
    """Answers ``/openstack/...``."""

    def __init__(self, compute):
        self._compute = compute

    def handle(self, req, subpath) -> Response:
        if req.method not in ("GET", "HEAD"):
            return Response(405, "405 Method Not Allowed\n")
        parts = [p for p in subpath.split("/") if p]
        if not parts:
            return _text(VERSIONS)
        if parts[0] not in VERSIONS or len(parts) > 2:
            return _not_found()
        if len(parts) == 1:
            return _text(FILES)
        server = self._server(req)
        if server is None:
            return _not_found()
        name = parts[1]
        if name == "meta_data.json":
            body = self._compute.meta_data(server)
        elif name == "network_data.json":
            body = {"links": [], "networks": [], "services": []}
        elif name in ("vendor_data.json", "vendor_data2.json"):
            body = {}
        else:
            return _not_found()
        return Response(200, json.dumps(body).encode("utf-8"),
                        {"Content-Type": "application/json"})

    def _server(self, req):
        wanted = req.headers.get("X-Instance-ID")
        if wanted:
            server = self._compute.get_server_or_none(wanted)
            return server
        return self._compute.local_server()
