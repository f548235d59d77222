"""contrib/docker-plugin/config.json against the plugin config dockerd reads,
and the plugin's entrypoint against config.json.

dockerd 20.10 checks nothing in a plugin's config.json beyond decoding it into
its PluginConfig type (`validateConfig` in plugin/backend_linux.go returns nil),
and Go's JSON decoder matches keys case-insensitively and silently drops the
ones it does not know: a misspelt "propagatedMounts" would be lost without a
word and fuxi's mounts never reach containers.  So the schema below is strict
where dockerd is lax.  Its facts, from Docker's plugin config reference
(docs/extend/config.md) and the engine's code:

* fields and types: api/types/plugin.go (generated from the Engine API's
  PluginConfig definition); the API marks the top-level fields in REQUIRED;
* an interface type "docker.volumedriver/1.0" is split at the last "." before
  the first "/" into prefix, capability and version; a volume driver is found
  by prefix "docker" and capability "volumedriver" (plugin/v2/plugin.go);
* the socket is a file name joined to /run/docker/plugins/<plugin id>/;
* `docker plugin set` changes only an env's or args' "value", a mount's
  "source" and a device's "path" (plugin/v2/settable.go), found by "name";
* a mount with no source fails at enable ("mount source is not specified");
  the propagated mount is mounted before config.json's mounts, so a mount at
  or above it would hide it (plugin/v2/plugin_linux.go, InitSpec);
* the config must be one JSON value ("invalid config json" otherwise).
"""

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from fuxi import settings
from storage_core.config import CloudConfig

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "contrib" / "docker-plugin"
CONFIG_PATH = PLUGIN_DIR / "config.json"

STR, BOOL, UINT32 = "string", "boolean", "uint32"
SETTING = {"Name": STR, "Description": STR, "Settable": [STR]}
SCHEMA = {
    "Args": {**SETTING, "Value": [STR]},
    "Description": STR,
    "DockerVersion": STR,
    "Documentation": STR,
    "Entrypoint": [STR],
    "Env": [{**SETTING, "Value": STR}],
    "Interface": {"Socket": STR, "Types": [STR], "ProtocolScheme": STR},
    "IpcHost": BOOL,
    "Linux": {"AllowAllDevices": BOOL, "Capabilities": [STR], "Devices": [{**SETTING, "Path": STR}]},
    "Mounts": [{**SETTING, "Source": STR, "Destination": STR, "Type": STR, "Options": [STR]}],
    "Network": {"Type": STR},
    "PidHost": BOOL,
    "PropagatedMount": STR,
    "User": {"UID": UINT32, "GID": UINT32},
    "WorkDir": STR,
    "rootfs": {"type": STR, "diff_ids": [STR]},
}
REQUIRED = ("Description", "Documentation", "Interface", "Entrypoint", "WorkDir", "Network", "Linux",
            "PropagatedMount", "PidHost", "IpcHost", "Mounts", "Env", "Args")
NETWORK_TYPES = ("bridge", "host", "none")
SETTABLE_FIELDS = {"Env": {"value"}, "Args": {"value"}, "Mounts": {"source"}, "Devices": {"path"}}
# capabilities(7) as of Linux 6.x.
LINUX_CAPABILITIES = {
    "CAP_AUDIT_CONTROL", "CAP_AUDIT_READ", "CAP_AUDIT_WRITE", "CAP_BLOCK_SUSPEND", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_KILL", "CAP_LEASE", "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_MKNOD", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_RAW", "CAP_PERFMON", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
    "CAP_SETUID", "CAP_SYSLOG", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_CHROOT", "CAP_SYS_MODULE",
    "CAP_SYS_NICE", "CAP_SYS_PACCT", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_WAKE_ALARM",
}


def _load_module(name, filename):
    spec = importlib.util.spec_from_file_location(name, PLUGIN_DIR / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = _load_module("fuxi_plugin_entrypoint", "entrypoint.py")
build = _load_module("fuxi_plugin_build", "build.py")


# -- reading the config as dockerd does -------------------------------------------------

def schema_problems(value, schema, where="config") -> list[str]:
    """What dockerd would drop, reject or misread in `value` against `schema`."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {json.dumps(value)}"]
        problems, seen = [], {}
        for key, item in value.items():
            field = next((f for f in schema if f.lower() == key.lower()), None)
            if field is None:
                problems.append(f"{where}.{key}: not a field dockerd knows (it would drop it); "
                                f"known: {', '.join(schema)}")
                continue
            if field in seen:
                problems.append(f"{where}: {seen[field]!r} and {key!r} are the same field to dockerd")
            seen[field] = key
            problems += schema_problems(item, schema[field], f"{where}.{key}")
        return problems
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {json.dumps(value)}"]
        return [p for i, item in enumerate(value) for p in schema_problems(item, schema[0], f"{where}[{i}]")]
    expected = {STR: str, BOOL: bool}.get(schema)
    if schema == UINT32:
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32
    else:
        ok = isinstance(value, expected)
    return [] if ok else [f"{where}: expected a {schema}, got {json.dumps(value)}"]


def fields(obj) -> dict:
    """obj's keys under the names dockerd gives them (its matching ignores case)."""
    return {next((f for f in SCHEMA_NAMES if f.lower() == k.lower()), k): v for k, v in obj.items()}


SCHEMA_NAMES = {name for part in (SCHEMA, SETTING, SCHEMA["Interface"], SCHEMA["Linux"],
                                  SCHEMA["Mounts"][0], SCHEMA["Env"][0], SCHEMA["Network"],
                                  SCHEMA["Args"], SCHEMA["User"]) for name in part}


def interface_type(text) -> tuple[str, str, str]:
    """(prefix, capability, version) the way dockerd's PluginInterfaceType splits it."""
    slash = text.find("/")
    head = text if slash < 0 else text[:slash]
    dot = head.rfind(".")
    prefix = head[:dot] if dot >= 0 else ""
    return prefix, head[dot + 1:], "" if slash < 0 else text[slash + 1:]


@pytest.fixture(scope="module")
def config() -> dict:
    text = CONFIG_PATH.read_text(encoding="utf-8")
    value, end = json.JSONDecoder().raw_decode(text)
    assert not text[end:].strip(), f"config.json holds more than one JSON value (from offset {end})"
    return fields(value)


# -- the schema checker itself ----------------------------------------------------------

@pytest.mark.parametrize("bad, needle", [
    ({"propagatedMounts": "/x"}, "config.propagatedMounts: not a field dockerd knows"),
    ({"PidHost": "true"}, "config.PidHost: expected a boolean"),
    ({"Interface": {"Types": "docker.volumedriver/1.0"}}, "config.Interface.Types: expected a list"),
    ({"Mounts": [{"Source": "/dev", "Option": ["rbind"]}]}, "config.Mounts[0].Option: not a field"),
    ({"Network": {"type": "host", "Type": "none"}}, "are the same field to dockerd"),
    ({"User": {"UID": -1}}, "config.User.UID: expected a uint32"),
    ({"Env": [{"Name": "X", "Value": 1}]}, "config.Env[0].Value: expected a string"),
])
def test_the_schema_check_finds_what_dockerd_would_drop_or_refuse(bad, needle):
    problems = schema_problems(bad, SCHEMA)
    assert any(needle in p for p in problems), problems


def test_interface_types_split_as_dockerd_splits_them():
    assert interface_type("docker.volumedriver/1.0") == ("docker", "volumedriver", "1.0")
    assert interface_type("docker.volume.driver/1.0") == ("docker.volume", "driver", "1.0")
    assert interface_type("volumedriver") == ("", "volumedriver", "")


# -- config.json --------------------------------------------------------------------------

def test_config_has_only_fields_dockerd_knows_with_their_types():
    value = json.loads(CONFIG_PATH.read_text(encoding="utf-8"))
    assert schema_problems(value, SCHEMA) == []


def test_config_has_every_field_the_engine_api_requires(config):
    assert [f for f in REQUIRED if f not in config] == []


def test_plugin_is_a_volume_driver_on_a_socket_in_its_plugin_directory(config):
    interface = fields(config["Interface"])
    assert ("docker", "volumedriver", "1.0") in [interface_type(t) for t in interface["Types"]]
    socket = interface["Socket"]
    assert socket and "/" not in socket, "the socket is a file name, joined to /run/docker/plugins/<id>/"
    # fuxi-server binds where dockerd will look.
    assert entrypoint.SOCKET == f"/run/docker/plugins/{socket}"


def test_volumes_are_mounted_under_the_propagated_mount(config):
    propagated = config["PropagatedMount"]
    assert propagated == entrypoint.STATE_DIR
    loaded = settings.load(entrypoint.server_argv([], {"FUXI_CONFIG_FILE": ""}))
    mount_root = loaded.storage_config(CloudConfig(auth={"auth_url": "http://cloud"})).effective_mount_root
    assert mount_root.startswith(propagated + "/"), mount_root


def test_no_mount_hides_the_propagated_mount(config):
    propagated = config["PropagatedMount"]
    for mount in map(fields, config["Mounts"]):
        destination = mount["Destination"].rstrip("/") or "/"
        assert not (propagated == destination or propagated.startswith(destination.rstrip("/") + "/")), (
            f"mount {mount.get('Name')} at {destination} would hide the propagated mount {propagated}")


def test_mounts_have_sources_absolute_destinations_and_bind_options(config):
    destinations = []
    for mount in map(fields, config["Mounts"]):
        assert mount.get("Source", "").startswith("/"), f"mount {mount} has no absolute source"
        assert mount["Destination"].startswith("/"), mount
        assert mount["Type"] == "bind" and "rbind" in mount["Options"], mount
        destinations.append(mount["Destination"])
    assert len(destinations) == len(set(destinations)), destinations


def test_settable_fields_are_ones_docker_plugin_set_changes(config):
    linux = fields(config["Linux"])
    groups = {"Env": config["Env"], "Args": [config["Args"]], "Mounts": config["Mounts"],
              "Devices": linux["Devices"]}
    names = []
    for group, entries in groups.items():
        for entry in map(fields, entries):
            settable = entry.get("Settable") or []
            assert set(settable) <= SETTABLE_FIELDS[group], f"{group} {entry.get('Name')}: {settable}"
            if settable:
                assert entry.get("Name"), f"a settable {group} entry needs a name to be set by"
                names.append(entry["Name"])
    assert len(names) == len(set(names)), f"`docker plugin set` finds settings by name: {names}"


def test_plugin_reaches_the_host_as_fuxi_needs(config):
    linux = fields(config["Linux"])
    mounts = {m["Destination"]: m for m in map(fields, config["Mounts"])}
    # Cloud endpoints, and the host's own address in attachments.
    assert fields(config["Network"])["Type"] == "host"
    # mount, losetup, mkfs on block devices.
    assert "CAP_SYS_ADMIN" in linux["Capabilities"]
    # Reading containers' mount namespaces (/proc/PID/ns/mnt), to tell a live count from a stale one.
    assert "CAP_SYS_PTRACE" in linux["Capabilities"]
    assert set(linux["Capabilities"]) <= LINUX_CAPABILITIES
    # Every device, as the host sees it: allowAllDevices only means something with /dev bound.
    assert linux["AllowAllDevices"] is True
    assert mounts["/dev"]["Source"] == "/dev"
    assert mounts["/run/udev"]["Source"] == "/run/udev"
    assert "ro" not in mounts["/sys"]["Options"], "SCSI rescans and udevadm trigger write to /sys"
    # storage_core/mount_users.py asks every process's mount namespace whether
    # a volume is still used: in a PID namespace of its own it would see only
    # itself, call every mount stale and drop the counts of running containers.
    assert config["PidHost"] is True


def test_settings_point_into_the_config_mount(config):
    env = {e["Name"]: e for e in map(fields, config["Env"])}
    config_mount = next(m for m in map(fields, config["Mounts"]) if m["Name"] == "config")
    for name in ("FUXI_CONFIG_FILE", "OS_CLIENT_CONFIG_FILE"):
        assert os.path.dirname(env[name]["Value"]) == config_mount["Destination"], env[name]
    assert env["FUXI_CONFIG_FILE"]["Value"] == entrypoint.DEFAULT_CONFIG_FILE
    # A Value-less env is left unset by dockerd (not set to ""), until `docker plugin set`.
    assert "Value" not in env["OS_CLOUD"]


def test_entrypoint_is_what_build_py_puts_in_the_rootfs(config):
    assert config["Entrypoint"] == [f"{build.VENV}/bin/python", build.ENTRYPOINT]
    assert config["WorkDir"].startswith("/")
    assert re.fullmatch(r"/[\w/.-]+", build.ENTRYPOINT)


# -- the entrypoint ----------------------------------------------------------------------

def test_entrypoint_fixes_socket_and_state_dir_over_the_config_file(tmp_path):
    conf = tmp_path / "fuxi.conf"
    conf.write_text("[fuxi]\nsocket = /elsewhere.sock\nstate_dir = /elsewhere\ndefault_fstype = xfs\n")
    argv = entrypoint.server_argv(["--devcloud"], {"FUXI_CONFIG_FILE": str(conf)})
    loaded = settings.load(argv)
    assert loaded.socket == entrypoint.SOCKET and loaded.state_dir == entrypoint.STATE_DIR
    assert loaded.default_fstype == "xfs" and loaded.devcloud is True


def test_entrypoint_runs_without_a_config_file(tmp_path, capsys):
    argv = entrypoint.server_argv([], {"FUXI_CONFIG_FILE": str(tmp_path / "absent.conf")})
    assert "--config-file" not in argv
    assert "absent.conf does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("mount_root", ["", "/var/lib/fuxi", "/var/lib/fuxi/mounts", "/var/lib/fuxi/x/../y"])
def test_mount_roots_under_the_propagated_mount_are_accepted(mount_root):
    entrypoint.check_mount_root(mount_root)


@pytest.mark.parametrize("mount_root", ["/mnt/fuxi", "/var/lib/fuxi-other", "/var/lib/fuxi/../elsewhere"])
def test_mount_roots_elsewhere_are_refused(mount_root):
    with pytest.raises(entrypoint.EntrypointError, match="outside /var/lib/fuxi"):
        entrypoint.check_mount_root(mount_root)


def test_entrypoint_refuses_to_start_with_a_mount_root_dockerd_cannot_see(tmp_path, monkeypatch, capsys):
    conf = tmp_path / "fuxi.conf"
    conf.write_text("[fuxi]\nmount_root = /mnt/volumes\n")
    monkeypatch.setenv("FUXI_CONFIG_FILE", str(conf))
    started = []
    monkeypatch.setattr("fuxi.server.main", lambda argv: started.append(argv) or 0)

    assert entrypoint.main(["--devcloud"]) == 2

    assert started == []
    assert "mount_root = /mnt/volumes lies outside /var/lib/fuxi" in capsys.readouterr().err
