"""contrib/realcloud's Manila test share driver, called directly in the real
Manila's virtualenv: what the running stack never shows (a protocol with no
mount configured, a mount that went away, Manila re-applying every rule).

Manila's API and share service around the driver are covered by
test_manila_conformance.py.
"""

import json
import subprocess
import uuid

CLOUD_KINDS = ("realcloud",)

# Runs inside venv-manila: builds the driver from a configuration file the
# way manila-share does, then reports what each call did.
DRIVER_SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
from oslo_config import cfg
from manila import exception
from manila.share import configuration
import realcloud_manila_driver as rmd

conf_path, calls = sys.argv[1], json.loads(sys.argv[2])
cfg.CONF(["--config-file", conf_path], project="manila")
driver = rmd.DirectoryShareDriver(
    configuration=configuration.Configuration(rmd.directory_share_opts, config_group="t"))
results = []
for method, args in calls:
    try:
        results.append({"ok": getattr(driver, method)(None, *args)})
    except exception.ManilaException as exc:
        results.append({"error": type(exc).__name__, "message": str(exc)})
print(json.dumps(results))
"""


def run_driver(realcloud_stack, tmp_path, options, calls):
    conf = tmp_path / "driver.conf"
    conf.write_text("[t]\ndriver_handles_share_servers = False\n" +
                    "".join(f"realcloud_{k} = {v}\n" for k, v in options.items()))
    python = realcloud_stack.directory / "venv-manila" / "bin" / "python"
    result = subprocess.run(
        [str(python), "-c", DRIVER_SCRIPT, str(conf), json.dumps(calls)],
        capture_output=True, text=True, timeout=120,
        cwd=str(realcloud_stack.directory / "venv-manila"))
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def share(proto, share_id):
    # What Manila hands a driver: the share instance, with the share's id.
    return {"id": str(uuid.uuid4()), "share_id": share_id, "share_proto": proto}


def rule(access_type, access_to, level="rw", key=None):
    return {"access_id": str(uuid.uuid4()), "access_type": access_type, "access_to": access_to,
            "access_level": level, "access_key": key}


def test_a_protocol_without_its_mount_fails_creation(cloud_kind, realcloud_stack, tmp_path):
    share_id = str(uuid.uuid4())
    not_mounted = tmp_path / "empty-dir"
    not_mounted.mkdir()
    gluster = share("GLUSTERFS", share_id)
    results = run_driver(realcloud_stack, tmp_path, {
        "cephfs_mon": "127.0.0.1:6789", "cephfs_mount": str(not_mounted)}, [
        ("create_share", [gluster]),
        ("create_share", [share("CEPHFS", share_id)]),
        ("delete_share", [gluster]),  # nothing was made: nothing to remove
        ("create_share", [share("NFS", share_id)]),
    ])
    assert results[0]["error"] == "ShareBackendException"
    assert "GLUSTERFS shares are not configured" in results[0]["message"]
    assert "realcloud_glusterfs_mount" in results[0]["message"]
    assert results[1]["error"] == "ShareBackendException"
    assert "is not a mount point" in results[1]["message"]
    assert list(not_mounted.iterdir()) == []  # nothing written beside the missing mount
    assert results[2] == {"ok": None}
    assert results[3] == {"ok": [{"path": f"127.0.0.1:/exports/{share_id}",
                                  "is_admin_only": False, "metadata": {"preferred": True}}]}


def test_update_access_per_protocol(cloud_kind, realcloud_stack, tmp_path):
    cephx, manila_id, ip_on_ceph = rule("cephx", "alice"), rule("cephx", "manila"), rule("ip", "10.0.0.1")
    cert_ro, cert = rule("cert", "a.example", "ro"), rule("cert", "b.example")
    kept = rule("cephx", "bob", key="AQBjvnZpAAAAABAAAAAAAAAAAAAAAAAAAAAAAA==")
    results = run_driver(realcloud_stack, tmp_path, {}, [
        ("update_access", [share("CEPHFS", "s1"), [cephx, manila_id, ip_on_ceph],
                           [cephx, manila_id, ip_on_ceph], [], []]),
        ("update_access", [share("GLUSTERFS", "s2"), [cert_ro, cert], [cert_ro, cert], [], []]),
        ("update_access", [share("NFS", "s3"), [rule("ip", "10.0.0.0/24")], [], [], []]),
        # Nothing added or denied: Manila asks for every rule again (after a
        # restart); a rule keeps the key it has, one without gets one.
        ("update_access", [share("CEPHFS", "s1"), [kept, cephx], [], [], []]),
    ])
    ceph = results[0]["ok"]
    assert ceph[manila_id["access_id"]] == {"state": "error"}
    assert ceph[ip_on_ceph["access_id"]] == {"state": "error"}
    assert ceph[cephx["access_id"]]["access_key"].startswith("AQ")
    assert results[1]["ok"] == {cert_ro["access_id"]: {"state": "error"}}
    assert results[2]["ok"] == {}
    recovered = results[3]["ok"]
    assert kept["access_id"] not in recovered and recovered[cephx["access_id"]]["access_key"]
