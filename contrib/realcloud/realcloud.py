#!/usr/bin/env python3
"""realcloud: a real Keystone + Cinder + Manila on loopback, from PyPI, for fuxi's tests.

Standard library only: this runs under the system python3 or fuxi's venv.

    realcloud.py install --dir D      # venvs + RabbitMQ + MariaDB (idempotent, stamp file)
    realcloud.py start --dir D [--token-expiration SECONDS]
                 [--glusterfs-server IP --glusterfs-volume VOL --glusterfs-mount DIR]
                 [--cephfs-mon HOST:PORT --cephfs-mount DIR]
    realcloud.py status --dir D
    realcloud.py stop --dir D         # idempotent; releases loop devices

Also importable: install(dir), start(dir, token_expiration=3600,
share_backends=None) -> dict, stop(dir), status(dir) -> dict.

Layout of D (everything lives there):
    venv-keystone/ venv-cinder/ venv-manila/ install.json   what `install` made
    keystone/ cinder/ manila/ rabbitmq/ mariadb/            configuration and databases
    volumes/                                   one sparse file per volume or snapshot
    backups/                                   cinder-backup's POSIX repository
    logs/                                      one log per service
    run/pids.json run/ports.json               process groups and ports
    clouds.yaml ready.json                     what tests read
"""

import argparse
import base64
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PIN_FILES = ('requirements-keystone.txt', 'requirements-cinder.txt',
             'requirements-manila.txt', 'constraints.txt')
VENVS = (('keystone', 'requirements-keystone.txt'),
         ('cinder', 'requirements-cinder.txt'),
         ('manila', 'requirements-manila.txt'))
DRIVER_MODULE = 'realcloud_cinder_driver'
SQLITE_FIX_MODULE = 'realcloud_sqlite_immediate'
KEYSTONE_WSGI_MODULE = 'realcloud_keystone_wsgi'
MANILA_DRIVER_MODULE = 'realcloud_manila_driver'
MANILA_WSGI_MODULE = 'realcloud_manila_wsgi'
RABBIT_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server'
MARIADB_SERVER = '/usr/sbin/mariadbd'
MARIADB_INSTALL_DB = '/usr/bin/mariadb-install-db'
# Debian packages `install` adds when missing: package -> a file it ships.
DEBIAN_PACKAGES = (('rabbitmq-server', RABBIT_SERVER),
                   ('mariadb-server', MARIADB_SERVER))
REGION = 'RegionOne'
BACKEND = 'local'  # backend, pool and default volume type
MULTIATTACH_TYPE = 'local-multiattach'
CINDER_HOST = 'realcloud'
MANILA_HOST = 'realcloud'
SHARE_BACKEND = 'shares'  # Manila backend section, backend name and pool
SHARE_TYPE = 'default'    # Manila's default share type
SHARE_PROTOCOLS = ('NFS', 'CEPHFS', 'GLUSTERFS')
# The share backend flags of `start`: those of one protocol come together.
SHARE_BACKEND_GROUPS = {
    'GLUSTERFS': ('glusterfs_server', 'glusterfs_volume', 'glusterfs_mount'),
    'CEPHFS': ('cephfs_mon', 'cephfs_mount'),
}
# Stop order; start order is roughly the reverse, with the schedulers late.
SERVICES = ('cinder-scheduler', 'cinder-backup', 'cinder-volume',
            'cinder-api', 'manila-share', 'manila-scheduler', 'manila-api',
            'keystone', 'rabbitmq', 'mariadb', 'epmd')
CLOUD_NAMES = ('realcloud', 'realcloud-appcred', 'realcloud-trust',
               'realcloud-other', 'realcloud-admin')

# Bounds on waiting for each service (seconds).
WAIT_RABBIT = 60
WAIT_KEYSTONE = 90
WAIT_CINDER_API = 90
WAIT_CINDER_VOLUME = 90
WAIT_SCHEDULER = 90
WAIT_CINDER_BACKUP = 90
WAIT_MARIADB = 30
WAIT_MANILA_API = 90
WAIT_MANILA_POOL = 90
STOP_GRACE = 15
# MariaDB and Manila start at a lower CPU priority: on two cores they would
# otherwise slow down keystone-manage and Cinder, which the start waits for
# first (~1 s of 16).  They get the normal priority back once ready.
LOW_PRIORITY = ['nice', '-n', '10']

_CHILDREN = []  # Popen objects, kept so they are not collected early
# _spawn is called from the main thread and from the Manila start thread:
# each read-modify-write of pids.json is one critical section.
_PIDS_LOCK = threading.Lock()


class RealcloudError(RuntimeError):
    pass


def _log(msg):
    print('realcloud: ' + msg, flush=True)


# ---------------------------------------------------------------------------
# paths


class _Paths:
    def __init__(self, dir):
        self.root = os.path.abspath(dir)
        j = lambda *p: os.path.join(self.root, *p)  # noqa: E731
        self.stamp = j('install.json')
        self.venv = {name: j('venv-' + name) for name, _ in VENVS}
        self.keystone = j('keystone')
        self.cinder = j('cinder')
        self.manila = j('manila')
        self.rabbit = j('rabbitmq')
        self.mariadb = j('mariadb')
        self.volumes = j('volumes')
        self.backups = j('backups')
        self.logs = j('logs')
        self.run = j('run')
        self.pids = j('run', 'pids.json')
        self.ports = j('run', 'ports.json')
        self.clouds = j('clouds.yaml')
        self.ready = j('ready.json')

    def bin(self, venv, name):
        return os.path.join(self.venv[venv], 'bin', name)

    def log(self, name):
        return os.path.join(self.logs, name + '.log')


# ---------------------------------------------------------------------------
# install


def _pins_digest():
    h = hashlib.sha256()
    h.update(('python %d.%d\n' % sys.version_info[:2]).encode())
    for name in PIN_FILES:
        with open(os.path.join(HERE, name), 'rb') as f:
            h.update(name.encode() + b'\n' + f.read())
    return h.hexdigest()


def _run_logged(argv, log_path, env=None, check=True):
    with open(log_path, 'ab') as log:
        log.write(('\n$ %s\n' % ' '.join(argv)).encode())
        log.flush()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, env=env)
    if check and proc.returncode != 0:
        raise RealcloudError('%s failed (exit %d):\n%s' % (
            ' '.join(argv), proc.returncode, _tail(log_path)))
    return proc.returncode


def _tail(path, lines=40):
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode('utf-8', 'replace')
    except OSError as e:
        return '(no log at %s: %s)' % (path, e)
    return '--- tail of %s ---\n%s' % (
        path, '\n'.join(text.splitlines()[-lines:]))


def _missing_debian_packages():
    missing = [pkg for pkg, shipped in DEBIAN_PACKAGES
               if not os.path.exists(shipped)]
    if not shutil.which('epmd') and 'rabbitmq-server' not in missing:
        missing.append('rabbitmq-server')
    return missing


def _ensure_debian_packages(log_path):
    """apt-get install RabbitMQ and MariaDB when missing; the names installed."""
    missing = _missing_debian_packages()
    if not missing:
        return []
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    cmd = ['apt-get', '-o', 'DPkg::Lock::Timeout=300', 'install', '-y',
           '--no-install-recommends'] + missing
    _log('installing Debian ' + ' '.join(missing))
    if _run_logged(cmd, log_path, env=env, check=False) != 0:
        _run_logged(['apt-get', '-o', 'DPkg::Lock::Timeout=300', 'update'],
                    log_path, env=env)
        _run_logged(cmd, log_path, env=env)
    return missing


def _installed(paths):
    try:
        with open(paths.stamp) as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return None
    if stamp.get('digest') != _pins_digest():
        return None
    for name, _ in VENVS:
        if not os.path.exists(paths.bin(name, 'python')):
            return None
    if _missing_debian_packages():
        return None
    return stamp


def install(dir):
    """Create the three venvs, install RabbitMQ and MariaDB; no-op when up to date."""
    paths = _Paths(dir)
    t0 = time.monotonic()
    stamp = _installed(paths)
    if stamp:
        _log('already installed in %s (pins unchanged; took %.1f s then)'
             % (paths.root, stamp.get('seconds', 0)))
        return stamp
    os.makedirs(paths.logs, exist_ok=True)
    if os.path.exists(paths.stamp):
        os.unlink(paths.stamp)
    timings = {}
    t = time.monotonic()
    installed = _ensure_debian_packages(paths.log('install-apt'))
    if installed:
        timings['apt ' + ' '.join(installed)] = round(time.monotonic() - t, 1)

    env = dict(os.environ)
    if os.environ.get('CI', '').lower() == 'true':
        env['PIP_NO_CACHE_DIR'] = '1'
    env.pop('PYTHONPATH', None)
    env.pop('VIRTUAL_ENV', None)
    python = getattr(sys, '_base_executable', None) or sys.executable
    procs = []
    for name, req in VENVS:
        venv = paths.venv[name]
        log_path = paths.log('install-' + name)
        if os.path.exists(venv):
            shutil.rmtree(venv)
        t = time.monotonic()
        _run_logged([python, '-m', 'venv', venv], log_path, env=env)
        argv = [paths.bin(name, 'python'), '-m', 'pip', 'install',
                '--disable-pip-version-check', '--progress-bar', 'off',
                '-c', os.path.join(HERE, 'constraints.txt'),
                '-r', os.path.join(HERE, req)]
        log = open(log_path, 'ab')
        log.write(('\n$ %s\n' % ' '.join(argv)).encode())
        log.flush()
        procs.append((name, log_path, t, log, subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, env=env)))
    failed = []
    for name, log_path, t, log, proc in procs:
        rc = proc.wait()
        log.close()
        timings['pip ' + name] = round(time.monotonic() - t, 1)
        if rc != 0:
            failed.append('pip install into venv-%s failed (exit %d)\n%s'
                          % (name, rc, _tail(log_path)))
    if failed:
        raise RealcloudError('\n'.join(failed))
    seconds = round(time.monotonic() - t0, 1)
    stamp = {'digest': _pins_digest(), 'seconds': seconds,
             'timings': timings,
             'no_pip_cache': env.get('PIP_NO_CACHE_DIR') == '1',
             'installed_at': time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                           time.gmtime())}
    with open(paths.stamp, 'w') as f:
        json.dump(stamp, f, indent=2)
    _log('installed in %.1f s (%s)' % (seconds, ', '.join(
        '%s %.1f s' % kv for kv in timings.items())))
    return stamp


# ---------------------------------------------------------------------------
# processes


def _read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def _write_json(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write('\n')
    os.replace(tmp, path)


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def _group_members(pgid):
    """Live (non-zombie) processes whose process group is pgid."""
    members = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(')') + 2:].split()
        # fields: state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != 'Z':
            members.append(int(entry))
    return members


def _group_alive(pgid):
    _reap(pgid)
    return bool(_group_members(pgid))


def _spawn(paths, name, argv, env=None, cwd=None):
    """Start argv in a new session (setsid); its pid is its process group."""
    out = open(paths.log(name + '.stdout'), 'ab')
    with _PIDS_LOCK:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        out.close()
        _CHILDREN.append(proc)
        pids = _read_json(paths.pids, {})
        pids[name] = proc.pid
        _write_json(paths.pids, pids)
    return proc


def _ephemeral_range():
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _free_ports(names):
    """A free loopback port per name, outside the kernel's ephemeral range.

    A port from bind(0) is an ephemeral one: by the time a service binds
    it, an outgoing connection (Erlang's, say) may hold it.
    """
    low, high = _ephemeral_range()
    candidates = list(range(20000, low)) if low > 21000 else \
        list(range(high + 1, 65000))
    rng = random.SystemRandom()
    ports = {}
    while len(ports) < len(names):
        port = rng.choice(candidates)
        if port in ports.values():
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(('127.0.0.1', port))
            except OSError:
                continue
        ports[names[len(ports)]] = port
    return ports


def _port_open(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1):
            return True
    except OSError:
        return False


def _watch_port(port, deadline_s):
    """Note (in the returned dict, key 'at') when port starts to accept."""
    seen = {}

    def watch():
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if _port_open(port):
                seen['at'] = time.monotonic()
                return
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    return seen


def _wait(what, check, deadline_s, proc=None, log=None, interval=0.2):
    """Poll check() until truthy; fail with the service log's tail."""
    end = time.monotonic() + deadline_s
    last_err = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - keep polling
            last_err = e
        if proc is not None and proc.poll() is not None:
            raise RealcloudError('%s exited (code %s) before it was ready\n%s'
                                 % (what, proc.returncode,
                                    _tail(log) if log else ''))
        if time.monotonic() > end:
            raise RealcloudError(
                '%s not ready after %d s (last error: %s)\n%s'
                % (what, deadline_s, last_err, _tail(log) if log else ''))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# HTTP (urllib, no proxies)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HTTPResult:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None


def _http(method, url, body=None, token=None, headers=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header('Accept', 'application/json')
    if data is not None:
        req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('X-Auth-Token', token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return HTTPResult(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        return HTTPResult(e.code, e.headers, e.read())


def _expect(res, statuses, what):
    if res.status not in statuses:
        raise RealcloudError('%s: HTTP %s %s' % (
            what, res.status, res.body[:500].decode('utf-8', 'replace')))
    return res.json()


class _Keystone:
    def __init__(self, url):
        self.url = url  # .../v3

    def auth(self, identity, scope=None):
        body = {'auth': {'identity': identity}}
        if scope:
            body['auth']['scope'] = scope
        res = _http('POST', self.url + '/auth/tokens', body)
        data = _expect(res, (201,), 'token for %s' % json.dumps(scope))
        return res.headers['X-Subject-Token'], data['token']

    def password(self, user, password, project=None, trust_id=None):
        identity = {'methods': ['password'], 'password': {'user': {
            'name': user, 'password': password,
            'domain': {'id': 'default'}}}}
        scope = None
        if project:
            scope = {'project': {'name': project,
                                 'domain': {'id': 'default'}}}
        if trust_id:
            scope = {'OS-TRUST:trust': {'id': trust_id}}
        return self.auth(identity, scope)

    def post(self, token, path, body, what):
        return _expect(_http('POST', self.url + path, body, token),
                       (200, 201), what)

    def put(self, token, path, what):
        return _expect(_http('PUT', self.url + path, None, token),
                       (200, 201, 204), what)

    def get(self, token, path, what):
        return _expect(_http('GET', self.url + path, None, token), (200,),
                       what)


# ---------------------------------------------------------------------------
# configuration files


def _ini(sections):
    out = []
    for section, values in sections.items():
        out.append('[%s]' % section)
        for k, v in values.items():
            out.append('%s = %s' % (k, v))
        out.append('')
    return '\n'.join(out)


def _yaml(obj, indent=0):
    """A tiny YAML writer for nested dicts of scalars (JSON scalars)."""
    lines = []
    for k, v in obj.items():
        pad = ' ' * indent
        if isinstance(v, dict):
            lines.append('%s%s:' % (pad, k))
            lines.extend(_yaml(v, indent + 2))
        else:
            lines.append('%s%s: %s' % (pad, k, json.dumps(v)))
    return lines


def _write(path, text, mode=0o600):
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, mode)


def _site_packages(paths, venv):
    out = subprocess.run(
        [paths.bin(venv, 'python'), '-c',
         'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        stdout=subprocess.PIPE, check=True, text=True)
    return out.stdout.strip()


# ---------------------------------------------------------------------------
# loop devices


def _loops_under(root):
    """(device, backing file) for loop devices backed by files under root."""
    try:
        out = subprocess.run(
            ['losetup', '--list', '--noheadings', '--raw',
             '--output', 'NAME,BACK-FILE'],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            check=False).stdout
    except FileNotFoundError:
        return []
    found = []
    prefix = root.rstrip('/') + '/'
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) != 2:
            continue
        dev, back = parts
        # --raw escapes spaces as \x20; a deleted file shows " (deleted)"
        back = back.replace('\\x20', ' ')
        if back.endswith(' (deleted)'):
            back = back[:-len(' (deleted)')]
        if back.startswith(prefix):
            found.append((dev, back))
    return found


def _release_loops(root):
    released = []
    for dev, back in _loops_under(root):
        subprocess.run(['losetup', '-d', dev], check=False,
                       stderr=subprocess.DEVNULL)
        released.append(dev)
    return released


# ---------------------------------------------------------------------------
# start


def _running_services(paths):
    pids = _read_json(paths.pids, {})
    return {name: pid for name, pid in pids.items() if _group_alive(pid)}


def _fresh_state(paths):
    _release_loops(paths.root)
    state_dirs = (paths.keystone, paths.cinder, paths.manila, paths.rabbit,
                  paths.mariadb, paths.volumes, paths.backups, paths.logs,
                  paths.run)
    for d in state_dirs:
        if os.path.exists(d):
            shutil.rmtree(d)
    for f in (paths.clouds, paths.ready):
        if os.path.exists(f):
            os.unlink(f)
    for d in state_dirs:
        os.makedirs(d, mode=0o700)


def _rabbit_env(paths, ports):
    conf_base = os.path.join(paths.rabbit, 'rabbitmq')
    env = dict(os.environ)
    env.update({
        'HOME': paths.rabbit,  # .erlang.cookie lives here
        'RABBITMQ_NODENAME': 'realcloud-%d@localhost' % ports['amqp'],
        'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
        'RABBITMQ_NODE_PORT': str(ports['amqp']),
        'RABBITMQ_DIST_PORT': str(ports['erlang_dist']),
        'ERL_EPMD_PORT': str(ports['epmd']),
        'ERL_EPMD_ADDRESS': '127.0.0.1',
        'RABBITMQ_MNESIA_BASE': os.path.join(paths.rabbit, 'mnesia'),
        'RABBITMQ_LOG_BASE': paths.logs,
        'RABBITMQ_LOGS': paths.log('rabbitmq'),
        'RABBITMQ_CONFIG_FILE': conf_base,
        'RABBITMQ_ADVANCED_CONFIG_FILE': os.path.join(paths.rabbit,
                                                      'advanced.config'),
        'RABBITMQ_CONF_ENV_FILE': os.path.join(paths.rabbit,
                                               'rabbitmq-env.conf'),
        'RABBITMQ_ENABLED_PLUGINS_FILE': os.path.join(paths.rabbit,
                                                      'enabled_plugins'),
        'RABBITMQ_PID_FILE': os.path.join(paths.rabbit, 'rabbitmq.pid'),
    })
    return env


def _start_rabbit(paths, ports):
    env = _rabbit_env(paths, ports)
    _write(os.path.join(paths.rabbit, 'rabbitmq.conf'),
           'loopback_users.guest = true\n'
           'disk_free_limit.absolute = 50MB\n'
           'log.console = false\n'
           'log.file.level = info\n', 0o644)
    _write(os.path.join(paths.rabbit, 'advanced.config'), '[].\n', 0o644)
    _write(os.path.join(paths.rabbit, 'rabbitmq-env.conf'), '', 0o644)
    _write(os.path.join(paths.rabbit, 'enabled_plugins'), '[].\n', 0o644)
    # Our own epmd on its own port, in its own process group: rabbit's
    # Erlang VM would otherwise start one that outlives it.
    epmd = _spawn(paths, 'epmd', [shutil.which('epmd'), '-port',
                                  str(ports['epmd']), '-address',
                                  '127.0.0.1'], env=env)
    _wait('epmd', lambda: _port_open(ports['epmd']), 10, epmd,
          paths.log('epmd.stdout'))
    return _spawn(paths, 'rabbitmq', [RABBIT_SERVER], env=env,
                  cwd=paths.rabbit)


def _use_wal(db_path):
    """Switch a SQLite database to write-ahead logging (a setting it keeps).

    cinder-api, -scheduler and -volume share one SQLite file. In WAL mode
    readers and the writer no longer block each other; writers are serialised
    by realcloud_sqlite_immediate (BEGIN IMMEDIATE), which is what stopped the
    occasional 500 "database is locked".
    """
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        mode = conn.execute('PRAGMA journal_mode=WAL').fetchone()[0]
    finally:
        conn.close()
    if mode.lower() != 'wal':
        raise RealcloudError('could not switch %s to WAL (got %s)' % (db_path, mode))


def _keystone_conf(paths, ports, token_expiration):
    return _ini({
        'DEFAULT': {'debug': 'false',
                    'log_file': paths.log('keystone'),
                    'use_stderr': 'false'},
        'database': {'connection': 'sqlite:///' + os.path.join(
            paths.keystone, 'keystone.db'),
            # no fsync per commit: the databases are thrown away anyway
            'sqlite_synchronous': 'false'},
        'token': {'provider': 'fernet',
                  'expiration': str(token_expiration)},
        'fernet_tokens': {'key_repository': os.path.join(paths.keystone,
                                                         'fernet-keys')},
        'fernet_receipts': {'key_repository': os.path.join(
            paths.keystone, 'fernet-keys')},
        'credential': {'key_repository': os.path.join(paths.keystone,
                                                      'credential-keys')},
        # An in-process cache (one gunicorn worker): token validation goes
        # from ~0.2 s to a few ms.
        'cache': {'enabled': 'true', 'backend': 'oslo_cache.dict'},
        # bcrypt's minimum cost: every user created and every password
        # token is hashed/checked, and the default cost (12) adds ~0.25 s
        # per call.  Test-only.
        'identity': {'password_hash_rounds': '4'},
    })


def _cinder_conf(paths, ports, pw, keystone_url):
    privsep_helper = '%s --config-file %s' % (
        paths.bin('cinder', 'privsep-helper'),
        os.path.join(paths.cinder, 'cinder.conf'))
    return _ini({
        'DEFAULT': {
            'debug': 'false',
            'use_stderr': 'false',
            'state_path': paths.cinder,
            'host': CINDER_HOST,
            'my_ip': '127.0.0.1',
            'transport_url': 'rabbit://guest:guest@127.0.0.1:%d/'
                             % ports['amqp'],
            'auth_strategy': 'keystone',
            'osapi_volume_listen': '127.0.0.1',
            'osapi_volume_listen_port': str(ports['cinder']),
            'osapi_volume_workers': '1',
            'api_paste_config': os.path.join(paths.venv['cinder'], 'etc',
                                             'cinder', 'api-paste.ini'),
            # Without this file every filter (name=, metadata=, ...) is
            # refused with 400 "Invalid filters ... found in query options".
            'resource_query_filters_file': os.path.join(
                paths.venv['cinder'], 'etc', 'cinder',
                'resource_filters.json'),
            # Cinder's defaults (10 volumes, 1,000 GB per project) are a
            # production cloud's guard; tests racing dozens of creates on two
            # hosts would hit them.
            'quota_volumes': '1000',
            'quota_gigabytes': '100000',
            'quota_snapshots': '1000',
            'quota_backups': '1000',
            'quota_backup_gigabytes': '100000',
            'enabled_backends': BACKEND,
            'default_volume_type': BACKEND,
            'report_interval': '5',
            'rpc_response_timeout': '60',
            # cinder-api serves each connection with a green thread from a pool
            # of 100 (oslo.service's default), and keeps an idle keep-alive
            # connection, and its thread, for 900 s. The test suite opens more
            # clients than that over a run (every test's SDK connection, every
            # fuxi-server's pool): once the pool was full, new connections
            # waited in the accept queue and fuxi's requests timed out. Idle
            # connections now go after 60 s, and the pool is larger.
            'wsgi_default_pool_size': '1000',
            'client_socket_timeout': '60',
            # cinder-backup: the POSIX driver writes each backup as files
            # under D/backups.  It reads the volume in chunks of
            # backup_file_size (default ~2 GB, held in memory at once):
            # 64 MiB.  zstd: a chunk of zeros (most of a sparse volume)
            # compresses ~6x faster than with zlib, the default.
            'backup_driver': 'cinder.backup.drivers.posix.PosixBackupDriver',
            'backup_posix_path': paths.backups,
            'backup_file_size': str(64 * 2 ** 20),
            'backup_compression_algorithm': 'zstd',
            # The scheduler picks the backup service on the volume's host
            # from the services table (it is `realcloud`, as the volume's),
            # instead of from the capabilities cinder-backup publishes
            # (at its start, then every minute or more): no race between the
            # scheduler's start and cinder-backup's.
            'backup_use_same_host': 'true',
        },
        # timeout: wait up to 30 s for another process's write lock
        # instead of sqlite3's 5 s.
        'database': {'connection': 'sqlite:///' + os.path.join(
            paths.cinder, 'cinder.db') + '?timeout=30',
            'sqlite_synchronous': 'false'},
        'oslo_concurrency': {'lock_path': os.path.join(paths.cinder,
                                                       'locks')},
        'coordination': {'backend_url': 'file://' + os.path.join(
            paths.cinder, 'coordination')},
        'keystone_authtoken': {
            'www_authenticate_uri': keystone_url,
            'auth_url': keystone_url,
            'auth_type': 'password',
            'username': 'cinder',
            'password': pw['cinder'],
            'user_domain_name': 'Default',
            'project_name': 'service',
            'project_domain_name': 'Default',
        },
        # os-brick (cinder-backup asks it for the host's connector
        # properties before each backup and restore: it reads the iSCSI
        # initiator name as root) and Cinder run privileged calls in a
        # privsep daemon, started by default through `sudo cinder-rootwrap
        # /etc/cinder/rootwrap.conf privsep-helper`: neither the file nor
        # the command (it is in the venv) is there.  Everything runs as
        # root here, so the venv's privsep-helper is started directly.
        'privsep_osbrick': {'helper_command': privsep_helper},
        'cinder_sys_admin': {'helper_command': privsep_helper},
        BACKEND: {
            'volume_driver': DRIVER_MODULE + '.LoopFileDriver',
            'volume_backend_name': BACKEND,
            'realcloud_volumes_dir': paths.volumes,
        },
    })


# ---------------------------------------------------------------------------
# MariaDB and Manila (Manila's migrations and share deletes need a real
# MySQL-family database: SQLite does not do)


class _MariaDB:
    """A private mariadbd: own datadir, unix socket and loopback port."""

    def __init__(self, paths, port):
        j = lambda *p: os.path.join(paths.mariadb, *p)  # noqa: E731
        self.conf = j('my.cnf')
        self.datadir = j('data')
        self.socket = j('mysqld.sock')
        self.init_sql = j('init.sql')
        self.port = port
        self.log = paths.log('mariadb')
        self.install_log = paths.log('mariadb-install-db')
        # sun_path holds 107 bytes; mariadbd fails late and obscurely.
        if len(self.socket.encode()) > 107:
            raise RealcloudError('%s is too long for a unix socket path: use '
                                 'a shorter --dir' % self.socket)

    def url(self, user, password, database):
        return ('mysql+pymysql://%s:%s@localhost/%s?unix_socket=%s'
                '&charset=utf8mb4' % (user, password, database, self.socket))

    def write_config(self, users):
        """users: {name: password}; each gets a database of its own name."""
        _write(self.conf, '\n'.join([
            '[mysqld]',
            'datadir = ' + self.datadir,
            'socket = ' + self.socket,
            'port = %d' % self.port,
            'bind-address = 127.0.0.1',
            'pid-file = ' + os.path.join(os.path.dirname(self.conf),
                                         'mariadb.pid'),
            'log-error = ' + self.log,
            'user = root',  # mariadbd refuses to run as root without it
            'skip-name-resolve',
            'character-set-server = utf8mb4',
            'collation-server = utf8mb4_general_ci',
            # Small and without durability: the database lives for one test
            # session.  The default 96 MB redo log alone would cost more
            # disk and start-up time than the whole schema.
            'innodb_buffer_pool_size = 32M',
            'innodb_log_file_size = 8M',
            'innodb_flush_log_at_trx_commit = 0',
            'innodb_doublewrite = 0',
            'max_connections = 300',
            '']), 0o600)
        sql = []
        # The passwords are secrets.token_urlsafe(): no quote to escape.
        for user, password in users.items():
            sql += ["CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4;"
                    % user,
                    "CREATE USER IF NOT EXISTS '%s'@'localhost' "
                    "IDENTIFIED BY '%s';" % (user, password),
                    "GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'localhost';"
                    % (user, user)]
        _write(self.init_sql, '\n'.join(sql) + '\n', 0o600)

    def install_db(self):
        # The system tables only (~0.5 s); root logs in over the socket as
        # the OS user root, nobody else gets in without a password.
        _run_logged(LOW_PRIORITY + [MARIADB_INSTALL_DB, '--defaults-file=' + self.conf,
                     '--auth-root-authentication-method=socket',
                     '--skip-test-db'], self.install_log)

    def spawn(self, paths):
        # The init file (users and databases) runs before the server
        # accepts its first connection.
        return _spawn(paths, 'mariadb', LOW_PRIORITY + [
            MARIADB_SERVER, '--defaults-file=' + self.conf,
            '--init-file=' + self.init_sql])

    def answers(self):
        """True once the server sends its handshake on the socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(self.socket)
            greeting = s.recv(64)
        # 3-byte length, sequence 0, then protocol version 10.
        return len(greeting) > 4 and greeting[4] == 10


def _manila_conf(paths, ports, pw, keystone_url, db_url, share_backends):
    backend = {
        'share_driver': MANILA_DRIVER_MODULE + '.DirectoryShareDriver',
        'share_backend_name': SHARE_BACKEND,
        'driver_handles_share_servers': 'false',
        'realcloud_pool_name': SHARE_BACKEND,
        'realcloud_nfs_server': '127.0.0.1',
    }
    for name, value in sorted(share_backends.items()):
        backend['realcloud_' + name] = value
    return _ini({
        'DEFAULT': {
            'debug': 'false',
            'use_stderr': 'false',
            'state_path': paths.manila,
            'host': MANILA_HOST,
            'my_ip': '127.0.0.1',
            'transport_url': 'rabbit://guest:guest@127.0.0.1:%d/'
                             % ports['amqp'],
            'auth_strategy': 'keystone',
            'api_paste_config': os.path.join(paths.venv['manila'], 'etc',
                                             'manila', 'api-paste.ini'),
            'enabled_share_backends': SHARE_BACKEND,
            'enabled_share_protocols': ','.join(SHARE_PROTOCOLS),
            'default_share_type': SHARE_TYPE,
            'report_interval': '5',
            # manila-share sends its capabilities at start and then every
            # periodic_interval (60 s, after a random delay of up to 60 s).
            # The scheduler and the share service start together: when the
            # start-up messages cross, the next report comes within 5 s.
            'periodic_interval': '5',
            'periodic_fuzzy_delay': '0',
            'rpc_response_timeout': '60',
            # manila-share waits for this long on SIGTERM (the default
            # 60 s; ~20 s seen): its state is thrown away, so 1 s will do.
            'graceful_shutdown_timeout': '1',
        },
        'database': {'connection': db_url},
        'oslo_concurrency': {'lock_path': os.path.join(paths.manila,
                                                       'locks')},
        'coordination': {'backend_url': 'file://' + os.path.join(
            paths.manila, 'coordination')},
        'keystone_authtoken': {
            'www_authenticate_uri': keystone_url,
            'auth_url': keystone_url,
            'auth_type': 'password',
            'username': 'manila',
            'password': pw['manila'],
            'user_domain_name': 'Default',
            'project_name': 'service',
            'project_domain_name': 'Default',
        },
        SHARE_BACKEND: backend,
    })


class _ManilaStarter(threading.Thread):
    """MariaDB, Manila's schema and the three Manila services, beside the
    Keystone and Cinder steps of the main thread.

    Nothing here needs Keystone: manila-api only asks it to check a token
    at the first request.  The services start once RabbitMQ listens.
    """

    def __init__(self, paths, ports, conf, mariadb, rabbit_up_check):
        super().__init__(name='realcloud-manila', daemon=True)
        self.paths = paths
        self.ports = ports
        self.conf = conf
        self.mariadb = mariadb
        self.rabbit_up = rabbit_up_check
        self.timings = {}
        self.marks = {}
        self.procs = {}
        self.error = None
        self.cancelled = threading.Event()

    def _step(self):
        if self.cancelled.is_set():
            raise RealcloudError('Manila start cancelled')

    def run(self):
        try:
            self._run()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e

    def _run(self):
        paths = self.paths
        t = time.monotonic()
        self.mariadb.install_db()
        self._step()
        mysqld = self.mariadb.spawn(paths)
        self.procs['mariadb'] = mysqld
        _wait('mariadb', self.mariadb.answers, WAIT_MARIADB, mysqld,
              self.mariadb.log, interval=0.05)
        self.timings['mariadb'] = round(time.monotonic() - t, 1)
        self._step()

        t = time.monotonic()
        _run_logged(LOW_PRIORITY + [paths.bin('manila', 'manila-manage'), '--config-file',
                     self.conf, 'db', 'sync'], paths.log('manila-manage'))
        self.timings['manila-manage db sync'] = round(time.monotonic() - t, 1)
        self._step()

        end = time.monotonic() + WAIT_RABBIT
        while not self.rabbit_up():  # the main thread reports its failure
            self._step()
            if time.monotonic() > end:
                raise RealcloudError('rabbitmq not listening after %d s'
                                     % WAIT_RABBIT)
            time.sleep(0.1)
        for binary in ('manila-scheduler', 'manila-share'):
            self.marks[binary] = time.monotonic()
            self.procs[binary] = _spawn(paths, binary, LOW_PRIORITY + [
                paths.bin('manila', binary), '--config-file', self.conf,
                '--log-file', paths.log(binary)])
        self.marks['manila-api'] = time.monotonic()
        self.procs['manila-api'] = _spawn(paths, 'manila-api', LOW_PRIORITY + [
            paths.bin('manila', 'gunicorn'),
            '--bind', '127.0.0.1:%d' % self.ports['manila'],
            '--workers', '1', '--worker-class', 'gthread', '--threads', '4',
            '--timeout', '120', '--graceful-timeout', '5',
            # As for Keystone: no idle keep-alive connection to reset.
            '--keep-alive', '0',
            '--no-control-socket',
            '--pythonpath', HERE,
            '--error-logfile', paths.log('manila-api-gunicorn'),
            MANILA_WSGI_MODULE + ':application'],
            env=dict(os.environ, REALCLOUD_MANILA_CONF=self.conf,
                     REALCLOUD_MANILA_LOG=paths.log('manila-api')),
            cwd=paths.manila)

    def result(self, deadline_s):
        """Wait for the thread; re-raise what it failed with."""
        self.join(deadline_s)
        if self.is_alive():
            raise RealcloudError('MariaDB/Manila preparation still running '
                                 'after %d s' % deadline_s)
        if self.error is not None:
            raise self.error
        return self

    def cancel(self):
        self.cancelled.set()
        self.join(WAIT_MARIADB + WAIT_RABBIT)


def _manila_headers(version='2.41'):
    return {'X-OpenStack-Manila-API-Version': version}


def _check_share_backends(share_backends):
    """The flags of each protocol come together, and mounts are mounts."""
    given = {k: v for k, v in (share_backends or {}).items() if v}
    known = {k for names in SHARE_BACKEND_GROUPS.values() for k in names}
    unknown = set(given) - known
    if unknown:
        raise RealcloudError('unknown share backend settings: %s'
                             % ', '.join(sorted(unknown)))
    for proto, names in SHARE_BACKEND_GROUPS.items():
        present = [n for n in names if n in given]
        if present and len(present) != len(names):
            raise RealcloudError(
                '%s shares need %s together (got only %s)' % (
                    proto, ', '.join('--' + n.replace('_', '-')
                                     for n in names),
                    ', '.join('--' + n.replace('_', '-') for n in present)))
    for name, value in given.items():
        if name.endswith('_mount'):
            value = os.path.abspath(value)
            given[name] = value
            if not os.path.ismount(value):
                raise RealcloudError('--%s %s is not a mount point'
                                     % (name.replace('_', '-'), value))
    return given


def _seed_keystone(ks, pw, cinder_url, manila_url):
    """Projects, users, roles, catalog, application credential, trust."""
    admin_token, admin = ks.password('admin', pw['admin'], project='admin')
    roles = {r['name']: r['id']
             for r in ks.get(admin_token, '/roles', 'list roles')['roles']}
    for needed in ('admin', 'member', 'service'):
        if needed not in roles:
            roles[needed] = ks.post(admin_token, '/roles',
                                    {'role': {'name': needed}},
                                    'create role ' + needed)['role']['id']

    def project(name):
        return ks.post(admin_token, '/projects', {'project': {
            'name': name, 'domain_id': 'default'}},
            'create project ' + name)['project']

    def user(name, password, default_project=None):
        body = {'name': name, 'password': password, 'domain_id': 'default'}
        if default_project:
            body['default_project_id'] = default_project
        return ks.post(admin_token, '/users', {'user': body},
                       'create user ' + name)['user']

    def grant(project_id, user_id, role):
        ks.put(admin_token, '/projects/%s/users/%s/roles/%s'
               % (project_id, user_id, roles[role]), 'grant ' + role)

    service = project('service')
    service_users = {}
    for name in ('cinder', 'manila'):
        service_users[name] = user(name, pw[name], service['id'])
        grant(service['id'], service_users[name]['id'], 'admin')
        grant(service['id'], service_users[name]['id'], 'service')

    fuxi_p = project('fuxi')
    fuxi = user('fuxi', pw['fuxi'], fuxi_p['id'])
    grant(fuxi_p['id'], fuxi['id'], 'member')
    trustee = user('fuxi-trustee', pw['fuxi-trustee'])
    other_p = project('other')
    other = user('fuxi-other', pw['fuxi-other'], other_p['id'])
    grant(other_p['id'], other['id'], 'member')

    # Manila's v2 API needs no project id in its URLs (2.60 and later
    # drop it; older versions accept both), as devstack registers it now.
    for stype, sname, url in (
            ('block-storage', 'cinder', cinder_url + '/v3/%(project_id)s'),
            ('volumev3', 'cinderv3', cinder_url + '/v3/%(project_id)s'),
            ('shared-file-system', 'manila', manila_url + '/v2'),
            ('sharev2', 'manilav2', manila_url + '/v2')):
        svc = ks.post(admin_token, '/services', {'service': {
            'type': stype, 'name': sname, 'enabled': True}},
            'create service ' + stype)['service']
        for interface in ('public', 'internal', 'admin'):
            ks.post(admin_token, '/endpoints', {'endpoint': {
                'service_id': svc['id'], 'interface': interface,
                'region_id': REGION, 'url': url}},
                'create endpoint %s %s' % (stype, interface))

    # As user fuxi, on project fuxi: an application credential, and a
    # trust to fuxi-trustee with impersonation (as Magnum sets it up).
    fuxi_token, _ = ks.password('fuxi', pw['fuxi'], project='fuxi')
    appcred = ks.post(fuxi_token, '/users/%s/application_credentials'
                      % fuxi['id'], {'application_credential': {
                          'name': 'fuxi-realcloud',
                          'description': 'fuxi tests (realcloud)'}},
                      'create application credential')['application_credential']
    trust = ks.post(fuxi_token, '/OS-TRUST/trusts', {'trust': {
        'trustor_user_id': fuxi['id'], 'trustee_user_id': trustee['id'],
        'project_id': fuxi_p['id'], 'impersonation': True,
        'roles': [{'name': 'member'}]}}, 'create trust')['trust']

    # Each credential must give a token before anything relies on it.
    ks.auth({'methods': ['application_credential'],
             'application_credential': {'id': appcred['id'],
                                        'secret': appcred['secret']}})
    ks.password('fuxi-trustee', pw['fuxi-trustee'], trust_id=trust['id'])
    ks.password('fuxi-other', pw['fuxi-other'], project='other')
    return {
        'admin_project_id': admin['project']['id'],
        'projects': {'fuxi': fuxi_p['id'], 'other': other_p['id'],
                     'service': service['id']},
        'users': {'fuxi': fuxi['id'], 'fuxi-trustee': trustee['id'],
                  'fuxi-other': other['id'],
                  'cinder': service_users['cinder']['id'],
                  'manila': service_users['manila']['id']},
        'application_credential': {'id': appcred['id'],
                                   'secret': appcred['secret']},
        'trust_id': trust['id'],
    }


def _clouds(keystone_url, pw, seed):
    common = {'region_name': REGION, 'identity_api_version': 3,
              'block_storage_api_version': 3, 'interface': 'public'}

    def password_cloud(user, password, project=None, trust_id=None):
        auth = {'auth_url': keystone_url, 'username': user,
                'password': password, 'user_domain_name': 'Default'}
        if project:
            auth['project_name'] = project
            auth['project_domain_name'] = 'Default'
        if trust_id:
            auth['trust_id'] = trust_id
        return dict({'auth_type': 'password', 'auth': auth}, **common)

    return {
        'realcloud': password_cloud('fuxi', pw['fuxi'], 'fuxi'),
        'realcloud-appcred': dict({
            'auth_type': 'v3applicationcredential',
            'auth': {'auth_url': keystone_url,
                     'application_credential_id':
                         seed['application_credential']['id'],
                     'application_credential_secret':
                         seed['application_credential']['secret']}},
            **common),
        'realcloud-trust': password_cloud(
            'fuxi-trustee', pw['fuxi-trustee'], trust_id=seed['trust_id']),
        'realcloud-other': password_cloud('fuxi-other', pw['fuxi-other'],
                                          'other'),
        'realcloud-admin': password_cloud('admin', pw['admin'], 'admin'),
    }


def _cinder_services(cinder_url, token, project_id):
    res = _http('GET', '%s/v3/%s/os-services' % (cinder_url, project_id),
                token=token, headers={'OpenStack-API-Version': 'volume 3.0'},
                timeout=10)
    return _expect(res, (200,), 'os-services')['services']


def start(dir, token_expiration=3600, share_backends=None):
    """Start RabbitMQ, MariaDB, Keystone, Cinder, Manila; return ready.json.

    share_backends: where Manila's share driver puts GLUSTERFS and CEPHFS
    shares, keys as the `start` flags (glusterfs_server, glusterfs_volume,
    glusterfs_mount, cephfs_mon, cephfs_mount); a protocol left out makes
    its shares end in `error`.
    """
    paths = _Paths(dir)
    t_total = time.monotonic()
    share_backends = _check_share_backends(share_backends)
    if not _installed(paths):
        raise RealcloudError('not installed in %s (or pins changed): run '
                             '"realcloud.py install --dir %s" first'
                             % (paths.root, paths.root))
    live = _running_services(paths)
    if live:
        raise RealcloudError('already running in %s (%s): stop it first'
                             % (paths.root, ', '.join(sorted(live))))
    _fresh_state(paths)
    background = []
    try:
        return _start(paths, token_expiration, share_backends, t_total,
                      background)
    except BaseException:
        _log('start failed; stopping what was started (logs kept in %s)'
             % paths.logs)
        # The Manila thread may be about to spawn: let it finish first, so
        # that stop() sees every process group it made.
        for thread in background:
            thread.cancel()
        stop(paths.root, quiet=True)
        raise


def _start(paths, token_expiration, share_backends, t_total, background):
    ports = _free_ports(('amqp', 'erlang_dist', 'epmd', 'keystone',
                         'cinder', 'manila', 'mariadb'))
    _write_json(paths.ports, ports)
    pw = {k: secrets.token_urlsafe(18) for k in (
        'admin', 'cinder', 'manila', 'manila-db', 'fuxi', 'fuxi-trustee',
        'fuxi-other')}
    keystone_url = 'http://127.0.0.1:%d/v3' % ports['keystone']
    cinder_url = 'http://127.0.0.1:%d' % ports['cinder']
    manila_url = 'http://127.0.0.1:%d' % ports['manila']
    timings = {}
    mark = {}

    # The driver module goes where the cinder venv imports it from, and so
    # does the SQLite locking fix, loaded by every cinder process via a .pth.
    site = _site_packages(paths, 'cinder')
    shutil.copy(os.path.join(HERE, DRIVER_MODULE + '.py'), site)
    shutil.copy(os.path.join(HERE, SQLITE_FIX_MODULE + '.py'), site)
    _write(os.path.join(site, SQLITE_FIX_MODULE + '.pth'), 'import %s\n' % SQLITE_FIX_MODULE, 0o644)

    shutil.copy(os.path.join(HERE, MANILA_DRIVER_MODULE + '.py'),
                _site_packages(paths, 'manila'))

    # RabbitMQ boots (~5 s) while Keystone and Cinder's databases are made.
    mark['rabbitmq'] = time.monotonic()
    rabbit = _start_rabbit(paths, ports)
    rabbit_up = _watch_port(ports['amqp'], WAIT_RABBIT)

    # Meanwhile a thread brings up MariaDB, Manila's schema, and then the
    # Manila services as soon as RabbitMQ listens.
    mariadb = _MariaDB(paths, ports['mariadb'])
    mariadb.write_config({'manila': pw['manila-db']})
    manila_conf = os.path.join(paths.manila, 'manila.conf')
    _write(manila_conf, _manila_conf(
        paths, ports, pw, keystone_url,
        mariadb.url('manila', pw['manila-db'], 'manila'), share_backends))
    for sub in ('locks', 'coordination'):
        os.makedirs(os.path.join(paths.manila, sub))
    manila = _ManilaStarter(paths, ports, manila_conf, mariadb,
                            lambda: 'at' in rabbit_up)
    background.append(manila)
    manila.start()

    ks_conf = os.path.join(paths.keystone, 'keystone.conf')
    _write(ks_conf, _keystone_conf(paths, ports, token_expiration))
    cinder_conf = os.path.join(paths.cinder, 'cinder.conf')
    _write(cinder_conf, _cinder_conf(paths, ports, pw, keystone_url))
    # cinder-backup reads a second file: it reports every second (instead
    # of every 5 s), so that its first report, which comes one interval
    # after its RPC server listens, tells soon that it is ready; and it
    # stops within a second of SIGTERM (~4 s after a backup by default).
    backup_conf = os.path.join(paths.cinder, 'cinder-backup.conf')
    _write(backup_conf, _ini({'DEFAULT': {'report_interval': '1',
                                          'graceful_shutdown_timeout': '1'}}))
    os.makedirs(os.path.join(paths.cinder, 'locks'))

    t = time.monotonic()
    with open(paths.log('cinder-manage'), 'ab') as log:
        cinder_db = subprocess.Popen(
            [paths.bin('cinder', 'cinder-manage'), '--config-file',
             cinder_conf, 'db', 'sync'], stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT)
    manage = paths.bin('keystone', 'keystone-manage')
    base = [manage, '--config-file', ks_conf]
    # fernet_setup and credential_setup only write two Fernet keys each
    # (files "0", staged, and "1", primary: 32 random bytes, urlsafe
    # base64); writing them here saves two keystone-manage start-ups.
    for repo in ('fernet-keys', 'credential-keys'):
        repo = os.path.join(paths.keystone, repo)
        os.makedirs(repo, mode=0o700)
        for index in ('0', '1'):
            _write(os.path.join(repo, index),
                   base64.urlsafe_b64encode(os.urandom(32)).decode())
    _run_logged(base + ['db_sync'], paths.log('keystone-manage-db_sync'))
    # The password goes in the environment, not on the logged command line.
    _run_logged(base + ['bootstrap', '--bootstrap-username', 'admin',
                        '--bootstrap-project-name', 'admin',
                        '--bootstrap-admin-url', keystone_url,
                        '--bootstrap-internal-url', keystone_url,
                        '--bootstrap-public-url', keystone_url,
                        '--bootstrap-region-id', REGION],
                paths.log('keystone-manage-bootstrap'),
                env=dict(os.environ, OS_BOOTSTRAP_PASSWORD=pw['admin']))
    timings['keystone-manage'] = round(time.monotonic() - t, 1)

    mark['keystone'] = time.monotonic()
    ks_env = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=ks_conf)
    ks_env.pop('OS_KEYSTONE_CONFIG_DIR', None)
    keystone = _spawn(paths, 'keystone', [
        paths.bin('keystone', 'gunicorn'),
        '--bind', '127.0.0.1:%d' % ports['keystone'],
        '--workers', '1', '--worker-class', 'gthread', '--threads', '4',
        '--timeout', '120', '--graceful-timeout', '5',
        # gunicorn closes idle keep-alive connections after 2 s by default;
        # a client reusing one at that moment gets ECONNRESET, which
        # keystoneauth does not retry for POST /auth/tokens.  Close after
        # every response instead.
        '--keep-alive', '0',
        '--no-control-socket',
        '--pythonpath', HERE,
        '--error-logfile', paths.log('keystone-gunicorn'),
        KEYSTONE_WSGI_MODULE + ':application'], env=ks_env,
        cwd=paths.keystone)

    def keystone_ready():
        res = _http('GET', keystone_url, timeout=3)
        return res.status == 200

    _wait('keystone', keystone_ready, WAIT_KEYSTONE, keystone,
          paths.log('keystone-gunicorn'))
    timings['keystone'] = round(time.monotonic() - mark['keystone'], 1)
    _log('keystone up in %.1f s (+ keystone-manage %.1f s)'
         % (timings['keystone'], timings['keystone-manage']))

    t = time.monotonic()
    ks = _Keystone(keystone_url)
    seed = _seed_keystone(ks, pw, cinder_url, manila_url)
    timings['keystone-seed'] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    rc = cinder_db.wait()
    if rc != 0:
        raise RealcloudError('cinder-manage db sync failed (exit %d)\n%s'
                             % (rc, _tail(paths.log('cinder-manage'))))
    timings['cinder-manage db sync (waited)'] = round(time.monotonic() - t, 1)
    _use_wal(os.path.join(paths.cinder, 'cinder.db'))

    _wait('rabbitmq', lambda: _port_open(ports['amqp']), WAIT_RABBIT, rabbit,
          paths.log('rabbitmq'))
    timings['rabbitmq'] = round(
        (rabbit_up.get('at') or time.monotonic()) - mark['rabbitmq'], 1)
    _log('rabbitmq up in %.1f s' % timings['rabbitmq'])

    cinder_argv = lambda b: [paths.bin('cinder', b), '--config-file',  # noqa
                             cinder_conf, '--log-file', paths.log(b)]
    mark['cinder-api'] = time.monotonic()
    api = _spawn(paths, 'cinder-api', cinder_argv('cinder-api'))
    mark['cinder-volume'] = time.monotonic()
    volume = _spawn(paths, 'cinder-volume', cinder_argv('cinder-volume'))
    mark['cinder-backup'] = time.monotonic()
    backup = _spawn(paths, 'cinder-backup', cinder_argv('cinder-backup') + [
        '--config-file', backup_conf])

    def api_ready():
        return _http('GET', cinder_url + '/', timeout=3).status in (200, 300)

    _wait('cinder-api', api_ready, WAIT_CINDER_API, api,
          paths.log('cinder-api'))
    timings['cinder-api'] = round(time.monotonic() - mark['cinder-api'], 1)
    _log('cinder-api up in %.1f s' % timings['cinder-api'])

    admin_token, _ = ks.password('admin', pw['admin'], project='admin')
    admin_pid = seed['admin_project_id']
    for vtype, specs in ((BACKEND, {}),
                         (MULTIATTACH_TYPE, {'multiattach': '<is> True'})):
        specs = dict(specs, volume_backend_name=BACKEND)
        _expect(_http('POST', '%s/v3/%s/types' % (cinder_url, admin_pid), {
            'volume_type': {'name': vtype,
                            'description': 'realcloud loop-file backend',
                            'os-volume-type-access:is_public': True,
                            'extra_specs': specs}},
            token=admin_token), (200,), 'create volume type ' + vtype)

    backend_host = '%s@%s' % (CINDER_HOST, BACKEND)

    def volume_ready():
        # replication_status is written by init_host_with_rpc, after the
        # service's RPC servers are listening: the scheduler's request for
        # capabilities will then be answered.
        for svc in _cinder_services(cinder_url, admin_token, admin_pid):
            if (svc['binary'] == 'cinder-volume' and
                    svc['host'] == backend_host and svc['state'] == 'up' and
                    svc.get('replication_status') == 'disabled'):
                return True
        return False

    _wait('cinder-volume', volume_ready, WAIT_CINDER_VOLUME, volume,
          paths.log('cinder-volume'), interval=0.3)
    timings['cinder-volume'] = round(
        time.monotonic() - mark['cinder-volume'], 1)
    _log('cinder-volume up in %.1f s' % timings['cinder-volume'])

    mark['cinder-scheduler'] = time.monotonic()
    scheduler = _spawn(paths, 'cinder-scheduler',
                       cinder_argv('cinder-scheduler'))

    def scheduler_ready():
        up = any(s['binary'] == 'cinder-scheduler' and s['state'] == 'up'
                 for s in _cinder_services(cinder_url, admin_token,
                                           admin_pid))
        if not up:
            return False
        res = _http('GET', '%s/v3/%s/scheduler-stats/get_pools'
                    % (cinder_url, admin_pid), token=admin_token, timeout=65)
        pools = [p['name'] for p in _expect(res, (200,), 'get_pools')['pools']]
        return '%s#%s' % (backend_host, BACKEND) in pools

    _wait('cinder-scheduler', scheduler_ready, WAIT_SCHEDULER, scheduler,
          paths.log('cinder-scheduler'), interval=0.3)
    timings['cinder-scheduler'] = round(
        time.monotonic() - mark['cinder-scheduler'], 1)
    _log('cinder-scheduler up in %.1f s (pool listed)'
         % timings['cinder-scheduler'])

    def backup_ready():
        # The service row exists (and counts as up) from before cinder-backup
        # listens on RabbitMQ; updated_at is first written by its first
        # report, one report_interval after its RPC server started.  Before
        # that, a backup request sent to it could be lost.
        return any(s['binary'] == 'cinder-backup' and
                   s['host'] == CINDER_HOST and s['state'] == 'up' and
                   s.get('updated_at')
                   for s in _cinder_services(cinder_url, admin_token,
                                             admin_pid))

    _wait('cinder-backup', backup_ready, WAIT_CINDER_BACKUP, backup,
          paths.log('cinder-backup'), interval=0.3)
    timings['cinder-backup'] = round(
        time.monotonic() - mark['cinder-backup'], 1)
    _log('cinder-backup up in %.1f s' % timings['cinder-backup'])

    share_pool = _finish_manila(paths, manila, manila_url, ks, pw, seed,
                                timings)

    clouds = _clouds(keystone_url, pw, seed)
    _write(paths.clouds, '\n'.join(
        ['# written by contrib/realcloud/realcloud.py; secrets inside'] +
        _yaml({'clouds': clouds})) + '\n')
    timings['total'] = round(time.monotonic() - t_total, 1)
    ready = {
        'clouds_yaml': paths.clouds,
        'clouds': list(CLOUD_NAMES),
        'volumes_dir': paths.volumes,
        'backups_dir': paths.backups,
        'logs_dir': paths.logs,
        'pids': _read_json(paths.pids, {}),
        'ports': ports,
        'keystone_url': keystone_url,
        'cinder_url': cinder_url,
        'region_name': REGION,
        'volume_type': BACKEND,
        'multiattach_volume_type': MULTIATTACH_TYPE,
        'backend_pool': '%s#%s' % (backend_host, BACKEND),
        'manila_url': manila_url,
        'mariadb': {'socket': manila.mariadb.socket,
                    'port': ports['mariadb']},
        'share_type': SHARE_TYPE,
        'share_pool': share_pool,
        'share_protocols': list(SHARE_PROTOCOLS),
        # Protocols whose shares can become available (NFS needs nothing).
        'share_protocols_served': ['NFS'] + [
            proto for proto, names in sorted(SHARE_BACKEND_GROUPS.items())
            if names[0] in share_backends],
        'share_backends': share_backends,
        'token_expiration': token_expiration,
        'projects': seed['projects'],
        'users': seed['users'],
        'trust_id': seed['trust_id'],
        'application_credential_id': seed['application_credential']['id'],
        'timings': timings,
    }
    _write_json(paths.ready, ready)
    os.chmod(paths.ready, 0o600)
    _log('ready in %.1f s: %s' % (timings['total'], ', '.join(
        '%s %.1f s' % (k, v) for k, v in timings.items() if k != 'total')))
    _log('OS_CLIENT_CONFIG_FILE=%s, clouds: %s'
         % (paths.clouds, ', '.join(CLOUD_NAMES)))
    return ready


def _finish_manila(paths, manila, manila_url, ks, pw, seed, timings):
    """Wait for the Manila thread and its services; make the share type."""
    t = time.monotonic()
    manila.result(WAIT_MARIADB + WAIT_RABBIT + 120)
    timings['manila thread (waited)'] = round(time.monotonic() - t, 1)
    timings.update(manila.timings)
    procs = manila.procs

    def api_ready():
        return _http('GET', manila_url + '/', timeout=3).status in (200, 300)

    _wait('manila-api', api_ready, WAIT_MANILA_API, procs['manila-api'],
          paths.log('manila-api'))
    timings['manila-api'] = round(
        time.monotonic() - manila.marks['manila-api'], 1)

    admin_token, _ = ks.password('admin', pw['admin'], project='admin')
    # A public type every project can use: no share servers (the file
    # servers exist already), no snapshots (the driver has none).
    _expect(_http('POST', manila_url + '/v2/types', {'share_type': {
        'name': SHARE_TYPE,
        'description': 'realcloud directory shares (GlusterFS, CephFS, NFS)',
        'share_type_access:is_public': True,
        'extra_specs': {'driver_handles_share_servers': 'False',
                        'snapshot_support': 'False'}}},
        token=admin_token, headers=_manila_headers()), (200,),
        'create share type ' + SHARE_TYPE)

    pool = '%s@%s#%s' % (MANILA_HOST, SHARE_BACKEND, SHARE_BACKEND)

    def pool_listed():
        res = _http('GET', manila_url + '/v2/scheduler-stats/pools',
                    token=admin_token, headers=_manila_headers(), timeout=10)
        pools = _expect(res, (200,), 'manila scheduler-stats/pools')['pools']
        return pool in [p['name'] for p in pools]

    # The scheduler lists the pool once manila-share's driver is set up and
    # its capabilities reached the scheduler.
    _wait('manila-share', pool_listed, WAIT_MANILA_POOL, procs['manila-share'],
          paths.log('manila-share'), interval=0.2)
    for binary in ('manila-scheduler', 'manila-share'):
        if procs[binary].poll() is not None:
            raise RealcloudError('%s exited (code %s)\n%s' % (
                binary, procs[binary].returncode, _tail(paths.log(binary))))
    timings['manila-share'] = round(
        time.monotonic() - manila.marks['manila-share'], 1)
    for name, proc in procs.items():
        os.setpriority(os.PRIO_PGRP, proc.pid, 0)  # see LOW_PRIORITY
    timings['manila (after cinder)'] = round(time.monotonic() - t, 1)
    _log('manila up: api %.1f s, pool listed %.1f s after manila-share '
         'started' % (timings['manila-api'], timings['manila-share']))
    return pool


# ---------------------------------------------------------------------------
# stop / status


def stop(dir, quiet=False):
    """Stop every recorded process group and release loop devices."""
    paths = _Paths(dir)
    pids = _read_json(paths.pids, {})
    order = [n for n in SERVICES if n in pids] + [
        n for n in pids if n not in SERVICES]
    live = [n for n in order if _group_alive(pids[n])]
    t0 = time.monotonic()
    # Cinder and Manila first (they talk to rabbit, keystone and the
    # database while shutting down), then keystone, rabbit and MariaDB,
    # then epmd once the Erlang VM is gone.
    phases = (('cinder-scheduler', 'cinder-backup', 'cinder-volume',
               'cinder-api', 'manila-share', 'manila-scheduler', 'manila-api'),
              ('keystone', 'rabbitmq', 'mariadb'), ('epmd',))
    others = [n for n in live if not any(n in p for p in phases)]
    for phase in [[n for n in live if n in p] for p in phases] + [others]:
        for name in phase:
            try:
                os.killpg(pids[name], signal.SIGTERM)
            except ProcessLookupError:
                pass
        end = time.monotonic() + STOP_GRACE
        while time.monotonic() < end and any(
                _group_alive(pids[n]) for n in phase):
            time.sleep(0.1)
        for name in phase:
            if _group_alive(pids[name]):
                if not quiet:
                    _log('%s did not stop on SIGTERM: SIGKILL' % name)
                try:
                    os.killpg(pids[name], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        end = time.monotonic() + 5
        while time.monotonic() < end and any(
                _group_alive(pids[n]) for n in phase):
            time.sleep(0.1)
    released = _release_loops(paths.root)
    if os.path.exists(paths.ready):
        os.unlink(paths.ready)
    if not quiet:
        _log('stopped %s in %.1f s%s' % (
            ', '.join(live) or 'nothing (not running)',
            time.monotonic() - t0,
            '; released ' + ', '.join(released) if released else ''))
    return {'stopped': live, 'released_loops': released}


def _rss_kb(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _du_bytes(path):
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def status(dir):
    paths = _Paths(dir)
    pids = _read_json(paths.pids, {})
    services = {}
    total_rss = 0
    for name, pid in pids.items():
        members = _group_members(pid) if _group_alive(pid) else []
        rss = sum(_rss_kb(p) for p in members)
        total_rss += rss
        services[name] = {'pgid': pid, 'alive': bool(members),
                          'processes': len(members),
                          'rss_mb': round(rss / 1024, 1)}
    return {
        'dir': paths.root,
        'installed': bool(_installed(paths)),
        'ready': os.path.exists(paths.ready),
        'services': services,
        'rss_mb': round(total_rss / 1024, 1),
        'disk_mb': round(_du_bytes(paths.root) / 2 ** 20, 1)
        if os.path.isdir(paths.root) else 0,
        'loop_devices': [d for d, _ in _loops_under(paths.root)],
    }


# ---------------------------------------------------------------------------
# command line


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='A real Keystone + Cinder + Manila on loopback for fuxi '
                    'tests.')
    sub = parser.add_subparsers(dest='command', required=True)
    for name in ('install', 'start', 'stop', 'status'):
        p = sub.add_parser(name)
        p.add_argument('--dir', required=True,
                       help='directory for venvs, state and logs')
        if name == 'start':
            p.add_argument('--token-expiration', type=int, default=3600,
                           help='Keystone [token] expiration in seconds')
            shares = p.add_argument_group(
                'Manila share backends',
                'where the test share driver puts shares; a protocol left '
                'out makes its shares end in error (NFS needs nothing)')
            shares.add_argument('--glusterfs-server', metavar='IP',
                                help='GlusterFS server (export '
                                     'IP:/VOLUME/share-<id>)')
            shares.add_argument('--glusterfs-volume', metavar='VOLUME',
                                help='GlusterFS volume holding the shares')
            shares.add_argument('--glusterfs-mount', metavar='DIR',
                                help='host mount of the whole volume')
            shares.add_argument('--cephfs-mon', metavar='HOST:PORT',
                                help='Ceph monitor (export '
                                     'HOST:PORT:/volumes/_nogroup/<id>)')
            shares.add_argument('--cephfs-mount', metavar='DIR',
                                help='host mount of the CephFS root')
    args = parser.parse_args(argv)
    try:
        if args.command == 'install':
            install(args.dir)
        elif args.command == 'start':
            start(args.dir, token_expiration=args.token_expiration,
                  share_backends={
                      name: getattr(args, name)
                      for names in SHARE_BACKEND_GROUPS.values()
                      for name in names if getattr(args, name)})
        elif args.command == 'stop':
            stop(args.dir)
        else:
            st = status(args.dir)
            print(json.dumps(st, indent=2))
            alive = [s['alive'] for s in st['services'].values()]
            return 0 if alive and all(alive) else 3
    except RealcloudError as e:
        print('realcloud: error: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
