"""dockerd's first call starts fuxi through its socket, as with fuxi.socket.

systemd-socket-activate (Debian's systemd package) plays systemd's part: it
listens on the plugin socket and starts fuxi-server on the first connection,
handing it the socket (LISTEN_FDS). dockerd's calls wait in the socket's queue
while fuxi starts, so the first `docker volume create` is answered, not refused.
The plugin has a name of its own, so the session's `fuxi` plugin is untouched.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from storage_core.devcloud.testing import release_loop_devices_under
from tests.e2e.conftest import IMAGE, VOLUME_PREFIX
from tests.e2e.test_docker_restart import restart_dockerd
from tests.functional.harness import mounted_under

DRIVER = "fuxi-activated"
SOCKET = f"/run/docker/plugins/{DRIVER}.sock"
FUXI_SERVER = Path(sys.executable).parent / "fuxi-server"


def test_dockers_first_call_starts_fuxi_on_the_passed_socket(docker, tmp_path):
    activate = shutil.which("systemd-socket-activate")
    assert activate, "systemd-socket-activate is missing: install Debian's systemd package (scripts/install.sh does)"
    assert not os.path.exists(SOCKET), f"{SOCKET} is left from an earlier run; remove it"
    state_dir = tmp_path / "state"
    log_path = tmp_path / "fuxi-server.log"
    with open(log_path, "wb") as log:
        activator = subprocess.Popen(
            [activate, "--listen", SOCKET, f"--setenv=PATH={os.environ['PATH']}", str(FUXI_SERVER),
             "--devcloud", "--socket", SOCKET, "--state-dir", str(state_dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    name = f"{VOLUME_PREFIX}activated-{uuid.uuid4().hex[:8]}"
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(SOCKET):
            assert activator.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        started = time.monotonic()
        docker("volume", "create", "-d", DRIVER, name)  # this call starts fuxi-server
        first_call = time.monotonic() - started
        out = docker("run", "--rm", "-v", f"{name}:/data", IMAGE, "sh", "-c",
                     "echo activated > /data/f && cat /data/f").stdout
        assert out.strip() == "activated"
        assert docker("volume", "inspect", "--format", "{{.Driver}}", name).stdout.strip() == DRIVER
        docker("volume", "rm", name)
        assert "socket activated: serving " + SOCKET in log_path.read_text()
        print(f"first docker volume create, fuxi-server started by it: {first_call:.1f} s")
    finally:
        if activator.poll() is None:
            activator.send_signal(signal.SIGTERM)
            try:
                activator.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(activator.pid, signal.SIGKILL)
                activator.wait()
        docker("volume", "rm", "-f", name, check=False)
        # Under systemd the socket outlives fuxi-server. Here its stand-in is gone:
        # dockerd 20.10 keeps a legacy driver it has used for good, and every
        # `docker volume ls` would then wait 15 s on the dead one, so dockerd is
        # restarted (live-restore keeps any running container).
        if os.path.exists(SOCKET):
            os.unlink(SOCKET)
        restart_dockerd()
    assert activator.returncode == 0, log_path.read_text()
    assert not mounted_under(tmp_path), mounted_under(tmp_path)
    assert not release_loop_devices_under(tmp_path)
    started = time.monotonic()
    docker("volume", "ls", "-q")
    assert time.monotonic() - started < 5, "dockerd still waits on the driver of the stopped fuxi-server"
