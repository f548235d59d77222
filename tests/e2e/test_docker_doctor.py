"""`fuxi doctor` against the real dockerd: with the session's fuxi-server on
dockerd's plugin socket, dockerd finds the socket and has loaded the driver."""

import json
import subprocess
import sys

from tests.e2e.conftest import DRIVER, PLUGIN_SOCKET

CLOUD_KINDS = ("devcloud",)  # dockerd's side does not depend on the cloud


def test_doctor_sees_dockerd_use_the_plugin(docker, fuxi_plugin):
    result = subprocess.run(
        [sys.executable, "-m", "fuxi.cli", "doctor", "--json", "--devcloud",
         "--config-file", str(fuxi_plugin.workdir / "fuxi.conf"), "--socket", PLUGIN_SOCKET,
         "--state-dir", str(fuxi_plugin.state_dir)],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    docker_checks = {name: c for name, c in checks.items() if c["area"] == "docker"}
    assert docker_checks and all(c["status"] == "OK" for c in docker_checks.values()), docker_checks
    assert f"'{DRIVER}'" in checks["dockerd loaded the volume driver"]["found"]
    for name in ("plugin socket", "socket permissions", "answers /Plugin.Activate"):
        assert checks[name]["status"] == "OK", checks[name]
