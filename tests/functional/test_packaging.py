"""`pip install` gives an operator everything the README's operator section uses:
the console scripts, the systemd units, the sample configs and the README."""

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_scripts_units_samples_and_readme(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("fuxi-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        data = {name.split(".data/data/", 1)[1]: archive.read(name) for name in names if ".data/data/" in name}
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = configparser.ConfigParser()
        scripts.read_string(archive.read(entry_points).decode())
    for shipped in ("systemd/fuxi.service", "systemd/fuxi.socket", "etc/fuxi.conf.sample", "etc/clouds.yaml.sample"):
        assert data[f"share/fuxi/{shipped}"] == (REPO / shipped).read_bytes(), shipped
    assert data["share/doc/fuxi/README.md"] == (REPO / "README.md").read_bytes()
    console_scripts = dict(scripts["console_scripts"])
    assert console_scripts["fuxi"] == "fuxi.cli:main" and console_scripts["fuxi-server"] == "fuxi.server:main"
    assert "fuxi/server.py" in names and "storage_core/service.py" in names
    # The CSI driver: its console script, its proto, and the stubs the build generated from it.
    assert console_scripts["fuxi-csi"] == "fuxi_csi.server:main"
    assert {"fuxi_csi/proto/csi.proto", "fuxi_csi/proto/csi_pb2.py", "fuxi_csi/proto/csi_pb2_grpc.py"} <= set(names)
