"""`fuxi doctor`: is this host set up to serve Docker volumes from OpenStack?

It reads the config the way fuxi-server does (same file, same flags), checks
the cloud and the host in-process (storage_core.diagnostics), then the plugin
socket (there, a socket, 0660 and group docker, a live fuxi-server answering
/Plugin.Activate, started with this config) and dockerd (it answers, it can
find the socket, it has loaded the plugin as a volume driver).

Checks are yielded one by one, so a slow cloud shows progress line by line.
"""

import grp
import json
import os
import pwd
import stat
import time
from dataclasses import dataclass
from typing import Iterator

import requests
import requests_unixsocket

from fuxi import settings as settings_mod
from fuxi.plugin_client import DEFAULT_SOCKET, Plugin, unix_url
from storage_core.config import CloudConfig
from storage_core.diagnostics import FAIL, INFO, OK, WARN, Check, Diagnosis, not_checked
from storage_core.errors import ConfigError

# What fuxi-server gives its socket (fuxi.server.secure_socket, systemd/fuxi.socket).
SOCKET_MODE = 0o660
SOCKET_GROUP = "docker"
# Where dockerd looks for plugins: sockets first, then spec files.
DOCKER_PLUGIN_SOCKET_DIR = "/run/docker/plugins"
DOCKER_PLUGIN_SPEC_DIRS = ("/etc/docker/plugins", "/usr/lib/docker/plugins")
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
# The config file the packaged systemd unit starts fuxi-server with.
PACKAGED_CONFIG_FILE = "/etc/fuxi/fuxi.conf"
# A live fuxi-server answers Activate at once; a stuck one must not stall the doctor.
PROBE_TIMEOUT = 5.0
ACTIVATE_ANSWER = {"Implements": ["VolumeDriver"]}


@dataclass
class DoctorOptions:
    config_file: str | None = None
    socket: str | None = None  # None: the config's
    state_dir: str | None = None
    devcloud: bool = False
    docker: bool = True
    docker_socket: str | None = None  # None: $DOCKER_HOST or /var/run/docker.sock


class Doctor:
    def __init__(self, options: DoctorOptions, diagnosis_factory=Diagnosis):
        self.options = options
        self._diagnosis_factory = diagnosis_factory
        self.settings = None
        self.config = None

    def run(self) -> Iterator[Check]:
        yield from self._config_checks()
        if self.config is not None:
            yield from self._diagnosis_factory(self.config).run()
        socket_path = self.options.socket or (self.settings.socket if self.settings else DEFAULT_SOCKET)
        live = False
        for check in socket_checks(socket_path, self.config):
            live = live or (check.what == "answers /Plugin.Activate" and check.status == OK)
            yield check
        if self.options.docker:
            yield from docker_checks(socket_path, live, self.options.docker_socket or docker_socket_from_env())
        else:
            yield not_checked("docker", "dockerd", "--no-docker")

    # -- config ------------------------------------------------------------

    def _server_argv(self) -> list[str]:
        """fuxi-server's command line this doctor mirrors."""
        argv = []
        if self.options.config_file:
            argv += ["--config-file", self.options.config_file]
        if self.options.socket:
            argv += ["--socket", self.options.socket]
        if self.options.state_dir:
            argv += ["--state-dir", self.options.state_dir]
        if self.options.devcloud:
            argv.append("--devcloud")
        return argv

    def _config_checks(self) -> Iterator[Check]:
        source = self.options.config_file or "no --config-file"
        try:
            self.settings = settings_mod.load(self._server_argv())
        except settings_mod.SettingsError as exc:
            yield Check("config", "config file", FAIL, str(exc),
                        f"correct {self.options.config_file or 'the options'} (etc/fuxi.conf.sample lists every "
                        "option), then run fuxi doctor again")
            return
        yield Check("config", "config file", OK, f"{source}: {self._summary()}")
        if not self.options.config_file and os.path.isfile(PACKAGED_CONFIG_FILE):
            yield Check("config", "config file", INFO, f"{PACKAGED_CONFIG_FILE} exists but was not read",
                        f"if fuxi-server uses it (the systemd unit does), run fuxi doctor --config-file "
                        f"{PACKAGED_CONFIG_FILE}")
        cloud, host_defaults = None, None
        use_devcloud = self.settings.devcloud
        if not use_devcloud and not self._cloud_named() and devcloud_runs(self.settings.state_dir):
            # No cloud named, so the fuxi-server of this state dir can only be a
            # `--devcloud` one (it refuses to start without a cloud): check its cloud.
            use_devcloud = True
            yield Check("config", "cloud", INFO, f"no cloud named, but a `fuxi-server --devcloud` runs with "
                        f"state dir {self.settings.state_dir}: checking its embedded devcloud",
                        "pass --devcloud to say so, or name the cloud to check with --config-file")
        if use_devcloud:
            check, cloud, host_defaults = devcloud_cloud(self.settings.state_dir)
            yield check
            if check.status == FAIL:
                return
        try:
            self.config = self.settings.storage_config(cloud, host_defaults)
        except (settings_mod.SettingsError, ConfigError) as exc:
            yield Check("config", "storage settings", FAIL, str(exc),
                        f"correct {self.options.config_file or 'the options'} as the message says")

    def _cloud_named(self) -> bool:
        return bool(self.settings.cloud or os.environ.get("OS_CLOUD"))

    def _summary(self) -> str:
        s = self.settings
        if s.devcloud:
            cloud = "the embedded devcloud"
        elif s.cloud:
            cloud = f"cloud {s.cloud}"
        elif os.environ.get("OS_CLOUD"):
            cloud = f"cloud {os.environ['OS_CLOUD']} (from $OS_CLOUD)"
        else:
            cloud = "no cloud named"
        pools = f", pools {', '.join(p.name for p in s.pools)}" if s.pools else ""
        return f"{cloud}, backends {s.backends}, state dir {s.state_dir}, socket {s.socket}{pools}"


def _devcloud_process(state_dir):
    from fuxi.devcloud_process import DevcloudProcess

    # Where `fuxi-server --devcloud` keeps its embedded cloud (fuxi.server.main).
    return DevcloudProcess(os.path.join(state_dir, "devcloud"))


def devcloud_runs(state_dir) -> bool:
    """Whether a `fuxi-server --devcloud` with this state dir has its devcloud up."""
    try:
        with open(_devcloud_process(state_dir).ready_file, encoding="utf-8") as f:
            return _process_alive(json.load(f).get("pid"))
    except (OSError, ValueError, AttributeError):
        return False


def devcloud_cloud(state_dir) -> tuple:
    """(Check, CloudConfig, host defaults) of the embedded devcloud that
    `fuxi-server --devcloud` runs under `state_dir`; (FAIL check, None, None)
    when none runs. The doctor checks that cloud rather than starting another."""
    from fuxi.devcloud_process import DevcloudError

    process = _devcloud_process(state_dir)
    start_it = (f"start fuxi-server --devcloud --state-dir {state_dir} (scripts/serve-devcloud.sh does), "
                "then run fuxi doctor --devcloud again")
    try:
        with open(process.ready_file, encoding="utf-8") as f:
            process.ready = json.load(f)
    except FileNotFoundError:
        return Check("config", "embedded devcloud", FAIL,
                     f"none runs for state dir {state_dir} (no {process.ready_file})", start_it), None, None
    except (OSError, ValueError) as exc:
        return Check("config", "embedded devcloud", FAIL, f"cannot read {process.ready_file}: {exc}",
                     start_it), None, None
    pid = process.ready.get("pid")
    if not _process_alive(pid):
        return Check("config", "embedded devcloud", FAIL,
                     f"{process.ready_file} names pid {pid}, which is gone (killed without cleaning up)",
                     start_it), None, None
    try:
        host_defaults = process.host_defaults()
        entry = process.ready["cloud"]
        cloud = CloudConfig(auth=entry["auth"], region_name=entry.get("region_name"))
    except (DevcloudError, KeyError, TypeError) as exc:
        return Check("config", "embedded devcloud", FAIL, f"{process.ready_file} is incomplete: {exc}",
                     start_it), None, None
    return Check("config", "embedded devcloud", OK,
                 f"pid {pid} at {process.ready.get('url')}, state in {process.state_dir}"), cloud, host_defaults


def _process_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


# -- the plugin socket -------------------------------------------------------------

def socket_checks(path, config=None) -> Iterator[Check]:
    """The socket dockerd and the CLI use: there, a socket, safe permissions,
    a live fuxi-server behind it, and (given the config) the one this config describes."""
    start_it = ("start fuxi-server (`systemctl start fuxi.socket fuxi.service`, or `fuxi-server "
                "--config-file FILE`); it makes the socket")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        yield Check("socket", "plugin socket", FAIL, f"no {path}", start_it + " (or pass --socket PATH)")
        return
    if not stat.S_ISSOCK(st.st_mode):
        yield Check("socket", "plugin socket", FAIL, f"{path} exists but is not a socket",
                    f"move {path} away (fuxi-server will not replace it), then start fuxi-server")
        return
    yield Check("socket", "plugin socket", OK, path)
    yield permissions_check(path, st)
    answer = activate_check(path)
    yield answer
    if answer.status == OK:
        yield server_check(path, config)
    else:
        yield not_checked("socket", "fuxi-server's set-up", "fuxi-server does not answer")


def _group_name(gid) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user_name(uid) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def permissions_check(path, st, group_exists=None) -> Check:
    """0660, owner root, group docker (when that group exists): dockerd runs as
    root, members of group docker may use the plugin and the CLI, nobody else."""
    if group_exists is None:
        try:
            grp.getgrnam(SOCKET_GROUP)
            group_exists = True
        except KeyError:
            group_exists = False
    mode = stat.S_IMODE(st.st_mode)
    owner, group = _user_name(st.st_uid), _group_name(st.st_gid)
    found = f"mode {mode:04o}, owner {owner}, group {group}"
    fix_all = f"chmod {SOCKET_MODE:04o} {path}; chown root:{SOCKET_GROUP if group_exists else 'root'} {path}"
    if mode & 0o007:
        return Check("socket", "socket permissions", FAIL,
                     f"{found}: any local user can create, mount and delete volumes through it",
                     fix_all + " (fuxi-server sets this at start; under systemd, SocketMode= in fuxi.socket)")
    if st.st_uid != 0:
        return Check("socket", "socket permissions", FAIL, f"{found}: user {owner} may change who can use it",
                     fix_all)
    if group_exists and group != SOCKET_GROUP and mode & 0o070 and st.st_gid != 0:
        return Check("socket", "socket permissions", FAIL,
                     f"{found}: members of group {group}, not {SOCKET_GROUP}, can use the plugin", fix_all)
    if group_exists and (group != SOCKET_GROUP or mode & 0o060 != 0o060):
        return Check("socket", "socket permissions", WARN,
                     f"{found}: members of group {SOCKET_GROUP} cannot use the fuxi CLI", fix_all)
    return Check("socket", "socket permissions", OK, found)


def activate_check(path, timeout=PROBE_TIMEOUT) -> Check:
    what = "answers /Plugin.Activate"
    plugin = Plugin(path, timeout=timeout)
    started = time.monotonic()
    try:
        resp = plugin.post("/Plugin.Activate")
    except requests.Timeout:
        return Check("socket", what, FAIL, f"{path} took a connection but gave no answer within {timeout:g} s",
                     "fuxi-server is stuck or overloaded: read its log (`journalctl -u fuxi`), restart it")
    except OSError as exc:
        return Check("socket", what, FAIL, f"nothing answers on {path} ({_reason(exc)}): a socket left by a "
                     "fuxi-server that stopped", "start fuxi-server; it replaces a stale socket")
    elapsed = (time.monotonic() - started) * 1000
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code != 200 or body != ACTIVATE_ANSWER:
        return Check("socket", what, FAIL,
                     f"{path} answered HTTP {resp.status_code} {resp.text[:200]!r}, not a Docker volume plugin",
                     "something else listens there: stop it, or give fuxi-server another --socket")
    return Check("socket", what, OK, f"VolumeDriver, in {elapsed:.0f} ms")


def _reason(exc) -> str:
    text = str(exc)
    for known in ("Connection refused", "Permission denied", "No such file"):
        if known in text:
            return known.lower()
    return text[-200:]


def server_check(path, config=None) -> Check:
    """The live fuxi-server's own account of its set-up, compared with the config read here."""
    what = "fuxi-server's set-up"
    try:
        resp = Plugin(path, timeout=PROBE_TIMEOUT * 4).post("/fuxi/server")
        answer = resp.json()
    except (OSError, ValueError) as exc:
        return Check("socket", what, WARN, f"/fuxi/server did not answer: {exc}",
                     "read fuxi-server's log (`journalctl -u fuxi`)")
    if resp.status_code == 404:
        return not_checked("socket", what, "this fuxi-server has no /fuxi/server (an older fuxi)")
    server = answer.get("Server") if isinstance(answer, dict) else None
    if not isinstance(server, dict):
        return Check("socket", what, WARN, f"/fuxi/server answered HTTP {resp.status_code}: {answer!r:.200}",
                     "read fuxi-server's log (`journalctl -u fuxi`)")
    unusable = {b: why for b, why in (server.get("backends") or {}).items() if why}
    found = (f"pid {server.get('pid')}, mounts under {server.get('mount_root')}, attach mode "
             f"{server.get('attach_mode')}, backends {', '.join(server.get('backends') or {})}"
             + (f", pools {', '.join(server['pools'])}" if server.get("pools") else ""))
    if config is not None and server.get("mount_root") != config.effective_mount_root:
        return Check("socket", what, WARN,
                     f"{found}; this config mounts under {config.effective_mount_root}: the server runs "
                     "with another config",
                     "run fuxi doctor with the --config-file (and --state-dir, --devcloud) fuxi-server runs with")
    if unusable:
        return Check("socket", what, WARN, found + "; " + "; ".join(f"{b}: {why}" for b, why in unusable.items()),
                     "volumes of an unusable backend cannot be created; see the cloud checks above")
    return Check("socket", what, OK, found)


# -- dockerd -----------------------------------------------------------------------

def docker_socket_from_env() -> str | None:
    """dockerd's socket as the docker client finds it; None for a TCP DOCKER_HOST."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if not host:
        return DEFAULT_DOCKER_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return None


def driver_name(plugin_socket, socket_dir=DOCKER_PLUGIN_SOCKET_DIR, spec_dirs=DOCKER_PLUGIN_SPEC_DIRS) -> str | None:
    """The volume driver name dockerd knows the socket by, or None when dockerd
    cannot find it: a socket in its plugin directory (NAME.sock or
    NAME/NAME.sock), or a spec file naming unix://SOCKET."""
    real = os.path.realpath(plugin_socket)
    folder, base = os.path.split(real)
    if base.endswith(".sock"):
        name = base[:-len(".sock")]
        if folder == os.path.realpath(socket_dir):
            return name
        if os.path.basename(folder) == name and os.path.dirname(folder) == os.path.realpath(socket_dir):
            return name
    for directory in spec_dirs:
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue
        for entry in entries:
            name, ext = os.path.splitext(entry)
            if ext not in (".spec", ".json"):
                continue
            try:
                with open(os.path.join(directory, entry), encoding="utf-8") as f:
                    text = f.read()
                address = json.loads(text).get("Addr", "") if ext == ".json" else text.strip()
            except (OSError, ValueError, AttributeError):
                continue
            if address.startswith("unix://") and os.path.realpath(address[len("unix://"):]) == real:
                return name
    return None


class DockerEngine:
    """The few Engine API reads the checks make, over dockerd's unix socket
    (the API itself, not the docker client: no client/daemon version mismatch)."""

    def __init__(self, socket_path, timeout=30.0):
        self.socket_path = socket_path
        self.timeout = timeout
        self._session = requests_unixsocket.Session()

    def get(self, path, **params) -> dict:
        resp = self._session.get(unix_url(self.socket_path, path), params=params, timeout=self.timeout)
        if resp.status_code != 200:
            raise DockerEngineError(f"dockerd answered GET {path} with HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()


class DockerEngineError(Exception):
    pass


def docker_checks(plugin_socket, plugin_live, engine_socket, engine=None, socket_dir=DOCKER_PLUGIN_SOCKET_DIR,
                  spec_dirs=DOCKER_PLUGIN_SPEC_DIRS) -> Iterator[Check]:
    name = driver_name(plugin_socket, socket_dir, spec_dirs)
    if name is None:
        yield Check("docker", "dockerd finds the socket", FAIL,
                    f"{plugin_socket} is neither in {socket_dir} nor named by a spec file in "
                    f"{' or '.join(spec_dirs)}",
                    f"run fuxi-server with --socket {socket_dir}/fuxi.sock (the default), or write "
                    f"unix://{plugin_socket} into {spec_dirs[0]}/fuxi.spec")
    else:
        yield Check("docker", "dockerd finds the socket", OK, f"as volume driver {name!r} (docker volume "
                    f"create -d {name})")
    if engine_socket is None:
        yield not_checked("docker", "dockerd", "DOCKER_HOST is not a unix socket; dockerd must run on this "
                          "host to use its plugin socket")
        return
    engine = engine or DockerEngine(engine_socket)
    try:
        version = engine.get("/version")
    except (OSError, ValueError, DockerEngineError) as exc:
        yield Check("docker", "dockerd answers", FAIL, f"no answer on {engine_socket}: {_reason(exc)}",
                    "start dockerd (`systemctl start docker`); on a host without Docker pass --no-docker")
        return
    yield Check("docker", "dockerd answers", OK,
                f"Docker {version.get('Version')} (API {version.get('ApiVersion')}) on {engine_socket}")
    what = "dockerd loaded the volume driver"
    if name is None:
        yield not_checked("docker", what, "dockerd cannot find the socket")
        return
    if not plugin_live:
        # dockerd would retry a dead plugin for 15 s and keep it registered dead.
        yield not_checked("docker", what, "fuxi-server does not answer on its socket")
        return
    try:
        # What a `docker volume ls` does: dockerd looks the driver up (activating
        # it at first use) and lists its volumes.
        listed = engine.get("/volumes", filters=json.dumps({"driver": [name]}))
        drivers = (engine.get("/info").get("Plugins") or {}).get("Volume") or []
    except (OSError, ValueError, DockerEngineError) as exc:
        yield Check("docker", what, FAIL, f"asking dockerd failed: {exc}",
                    "read dockerd's log (`journalctl -u docker`)")
        return
    warnings = [w for w in listed.get("Warnings") or [] if w]
    volumes = listed.get("Volumes") or []
    if name not in drivers:
        yield Check("docker", what, FAIL, f"dockerd's volume drivers are {', '.join(drivers) or 'none'}",
                    "read dockerd's log (`journalctl -u docker`) for the plugin's name; a `docker volume ls` "
                    "loads it")
    elif warnings:
        yield Check("docker", what, WARN, f"{name!r} loaded, but listing its volumes warned: {'; '.join(warnings)}",
                    "read fuxi-server's log (`journalctl -u fuxi`) for the failed List")
    else:
        yield Check("docker", what, OK, f"{name!r}, listing {len(volumes)} volume(s)")
