"""Where this host's Nova instance UUID comes from, in which order, and the auto check.

The metadata service is a local http.server on 127.0.0.1; every test runs
under loopback_only(), so a default pointing at 169.254.169.254 would fail.
"""

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from storage_core.config import CloudConfig, StorageConfig
from storage_core.errors import ConfigError
from storage_core.factory import choose_attach_mode
from storage_core.host import HostIdentity, InstanceLocator

CONFIGURED = "11111111-1111-4111-8111-111111111111"
CLOUD_INIT = "22222222-2222-4222-8222-222222222222"
LINKED = "33333333-3333-4333-8333-333333333333"
DRIVE = "44444444-4444-4444-8444-444444444444"
SERVICE = "55555555-5555-4555-8555-555555555555"
DMI = "66666666-6666-4666-8666-666666666666"


class _MetaData(BaseHTTPRequestHandler):
    body = None  # set per server
    requests = None

    def do_GET(self):
        self.requests.append(self.path)
        if self.path != "/openstack/latest/meta_data.json" or self.body is None:
            self.send_error(404)
            return
        data = self.body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def metadata_service():
    """A metadata service on 127.0.0.1; set .body to what meta_data.json says."""
    handler = type("Handler", (_MetaData,), {"body": None, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.handler = handler
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_url():
    """A loopback URL where nothing listens: the service is "refused", not slow."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def places(tmp_path, closed_url):
    """Every source present and distinct; tests remove them one by one."""
    cloud = tmp_path / "cloud"
    (cloud / "data").mkdir(parents=True)
    (cloud / "data" / "instance-id").write_text(CLOUD_INIT + "\n")
    (cloud / "instances" / LINKED).mkdir(parents=True)
    os.symlink(str(cloud / "instances" / LINKED), str(cloud / "instance"))
    drive = tmp_path / "drive"
    (drive / "openstack" / "latest").mkdir(parents=True)
    (drive / "openstack" / "latest" / "meta_data.json").write_text(json.dumps({"uuid": DRIVE}))
    dmi = tmp_path / "product_uuid"
    dmi.write_text(DMI.upper() + "\n")
    return {
        "cloud_init_dir": str(cloud),
        "config_drive_dir": str(drive),
        "metadata_url": closed_url,
        "dmi_uuid_path": str(dmi),
    }


def test_each_source_in_order(places, metadata_service):
    metadata_service.handler.body = json.dumps({"uuid": SERVICE, "name": "vm1"})

    found = InstanceLocator(instance_id=CONFIGURED, **places).find()
    assert (found.uuid, found.source) == (CONFIGURED, "configured instance_id")

    found = InstanceLocator(**places).find()
    assert found.uuid == CLOUD_INIT and "cloud-init" in found.source

    os.remove(os.path.join(places["cloud_init_dir"], "data", "instance-id"))
    found = InstanceLocator(**places).find()
    assert found.uuid == LINKED and "cloud-init" in found.source

    os.remove(os.path.join(places["cloud_init_dir"], "instance"))
    found = InstanceLocator(**places).find()
    assert found.uuid == DRIVE and "meta_data.json" in found.source

    places["config_drive_dir"] = None
    assert InstanceLocator(**places).find().uuid == DMI.lower()  # the service is refused: skipped

    places["metadata_url"] = metadata_service.url
    found = InstanceLocator(**places).find()
    assert found.uuid == SERVICE and found.source.startswith(metadata_service.url)
    assert metadata_service.handler.requests == ["/openstack/latest/meta_data.json"]

    places["metadata_url"] = None
    found = InstanceLocator(**places).find()
    assert found.uuid == DMI.lower() and "DMI" in found.source


def test_values_that_are_not_uuids_are_skipped_or_refused(places):
    with pytest.raises(ConfigError, match="instance_id 'vm-1' is not a UUID"):
        InstanceLocator(instance_id="vm-1", **places).find()
    # cloud-init on a non-OpenStack datasource: not a Nova instance id, try the next source.
    with open(os.path.join(places["cloud_init_dir"], "data", "instance-id"), "w") as f:
        f.write("iid-datasource-none")
    os.remove(os.path.join(places["cloud_init_dir"], "instance"))
    assert InstanceLocator(**places).find().uuid == DRIVE


def test_metadata_service_answers_that_are_no_use(places, metadata_service):
    places.update(cloud_init_dir=places["cloud_init_dir"] + "-gone", config_drive_dir=None)
    places.update(metadata_url=metadata_service.url)
    for body in (None, "not json", json.dumps(["a list"]), json.dumps({"uuid": "nope"})):
        metadata_service.handler.body = body
        assert InstanceLocator(**places).find().uuid == DMI.lower()


def test_nothing_found_names_every_place_and_the_fix(tmp_path, closed_url):
    locator = InstanceLocator(
        cloud_init_dir=str(tmp_path / "cloud"),
        config_drive_dir=str(tmp_path / "drive"),
        metadata_url=closed_url,
        dmi_uuid_path=str(tmp_path / "product_uuid"),
    )
    with pytest.raises(ConfigError) as caught:
        locator.find()
    message = str(caught.value)
    for place in (
        "configured instance_id: not set",
        str(tmp_path / "cloud" / "data" / "instance-id"),
        str(tmp_path / "drive" / "openstack" / "latest" / "meta_data.json"),
        f"{closed_url}/openstack/latest/meta_data.json",
        str(tmp_path / "product_uuid"),
        "set instance_id",
        "attach_mode = baremetal",
    ):
        assert place in message


def test_meta_data_prefers_the_live_service_over_the_boot_time_drive(places, metadata_service):
    assert InstanceLocator(**places).meta_data() == {"uuid": DRIVE}  # service refused: the drive
    metadata_service.handler.body = json.dumps({"uuid": SERVICE, "devices": []})
    places["metadata_url"] = metadata_service.url
    assert InstanceLocator(**places).meta_data() == {"uuid": SERVICE, "devices": []}


def test_local_evidence_never_asks_the_network_or_dmi(tmp_path, metadata_service):
    metadata_service.handler.body = json.dumps({"uuid": SERVICE})
    dmi = tmp_path / "product_uuid"
    dmi.write_text(DMI)
    bare = InstanceLocator(
        cloud_init_dir=str(tmp_path / "none"), metadata_url=metadata_service.url, dmi_uuid_path=str(dmi)
    )
    assert bare.local_evidence() is None and not bare.looks_like_nova_instance()
    assert metadata_service.handler.requests == []


def test_local_evidence_from_each_local_source(places):
    assert "instance_id" in InstanceLocator(instance_id=CONFIGURED).local_evidence()
    assert CLOUD_INIT in InstanceLocator(cloud_init_dir=places["cloud_init_dir"]).local_evidence()
    drive_only = InstanceLocator(cloud_init_dir="/nonexistent", config_drive_dir=places["config_drive_dir"])
    assert "config drive" in drive_only.local_evidence()


def _config(tmp_path, **fields):
    fields.setdefault("cloud_init_dir", str(tmp_path / "no-cloud-init"))
    return StorageConfig(state_dir=str(tmp_path / "state"), cloud=CloudConfig(cloud_name="x"), **fields)


def test_auto_chooses_nova_only_on_local_evidence(tmp_path, places):
    def mode(**fields):
        config = _config(tmp_path, **fields)
        return choose_attach_mode(config, InstanceLocator.from_config(config))

    # DMI and a metadata URL alone do not make a Nova instance (bare metal has DMI too).
    assert mode(dmi_uuid_path=places["dmi_uuid_path"], metadata_url=places["metadata_url"]) == "baremetal"
    assert mode(instance_id=CONFIGURED) == "nova"
    assert mode(cloud_init_dir=places["cloud_init_dir"]) == "nova"
    assert mode(config_drive_dir=places["config_drive_dir"]) == "nova"
    assert mode(attach_mode="baremetal", instance_id=CONFIGURED) == "baremetal"
    assert mode(attach_mode="nova") == "nova"


def test_config_checks_mode_and_device_timeout(tmp_path):
    with pytest.raises(ConfigError, match="unknown attach_mode 'vm'; use one of baremetal, nova, auto"):
        _config(tmp_path, attach_mode="vm")
    with pytest.raises(ConfigError, match="device_timeout"):
        _config(tmp_path, device_timeout=120.0)


def test_host_identity_still_detects_name_and_ip():
    host = HostIdentity.detect("somehost", "10.0.0.5")
    assert (host.name, host.ip) == ("somehost", "10.0.0.5")


def test_factory_builds_the_nova_attacher_with_the_instance_uuid(tmp_path, places):
    from storage_core.attach.nova import NovaAttacher
    from storage_core.factory import build_attacher
    from storage_core.fakes import FakeCinder, RecordingExecutor

    def build(**fields):
        config = _config(tmp_path, **fields)
        return build_attacher(config, connection=None, backend=FakeCinder(), executor=RecordingExecutor())

    attacher = build(cloud_init_dir=places["cloud_init_dir"])
    assert isinstance(attacher, NovaAttacher) and attacher.mode == "nova"
    assert attacher._server_id == CLOUD_INIT
    nowhere = {k: v for k, v in places.items() if k != "cloud_init_dir"}
    nowhere.update(config_drive_dir=None, dmi_uuid_path=str(tmp_path / "no-dmi"))
    with pytest.raises(ConfigError, match="set instance_id"):
        build(attach_mode="nova", **nowhere)
