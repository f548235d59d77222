"""storage_core.diagnostics: every check's verdict and fix, with the kernel
(HostFacts on a fake /proc, /sys, /dev, /lib/modules and tool directory) and
the cloud (a fake CloudProbe) varied at will."""

import os
import stat

import pytest
from keystoneauth1 import exceptions as ks_exceptions

from storage_core.config import CloudConfig, ShareConfig, StorageConfig, VolumeLimits
from storage_core.diagnostics.cloud import is_loopback_url
from storage_core.diagnostics import (
    FAIL, INFO, OK, WARN, AuthFacts, Check, CloudDiagnosis, Diagnosis, EndpointFacts, HostDiagnosis, HostFacts,
)
from storage_core.errors import AttachError, ConfigError

RELEASE = "6.1.0-test"
INSTANCE = "11111111-1111-4111-8111-111111111111"


# -- a fake host ----------------------------------------------------------------

class FakeHost:
    """Directories standing in for /proc, /sys, /dev, /lib/modules and the tools."""

    def __init__(self, root, filesystems=("ext4", "xfs"), loaded=(), builtin=(), installed=(),
                 devices=(), tools=(), modules_dir=True):
        self.root = root
        for name in ("proc", "sys/module", "dev", "tools"):
            os.makedirs(root / name, exist_ok=True)
        (root / "proc" / "filesystems").write_text("".join(
            f"nodev\t{fs}\n" if fs in ("fuse", "nfs4") else f"\t{fs}\n" for fs in filesystems))
        for module in loaded:
            os.makedirs(root / "sys" / "module" / module, exist_ok=True)
        if modules_dir:
            tree = root / "modules" / RELEASE
            os.makedirs(tree, exist_ok=True)
            (tree / "modules.builtin").write_text("".join(f"kernel/fs/{m}.ko\n" for m in builtin))
            (tree / "modules.dep").write_text("".join(f"kernel/drivers/{m}.ko.xz: \n" for m in installed))
        for device in devices:
            (root / "dev" / device).write_text("")
        for tool in tools:
            path = root / "tools" / tool
            path.write_text("#!/bin/sh\n")
            path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def facts(self) -> HostFacts:
        r = self.root
        return HostFacts(proc=str(r / "proc"), sys=str(r / "sys"), dev=str(r / "dev"),
                         modules_root=str(r / "modules"), release=RELEASE, tool_path=str(r / "tools"))


EVERYTHING = dict(
    filesystems=("ext4", "xfs", "fuse", "nfs4"),
    loaded=("iscsi_tcp", "nvme_tcp", "rbd", "ceph"),
    devices=("loop-control", "fuse", "nvme-fabrics"),
    tools=("iscsiadm", "nvme", "rbd", "mkfs.ext4", "mkfs.xfs", "blkid", "mount.nfs", "mount.glusterfs",
           "ceph-fuse", "mount.ceph"),
)


def config(tmp_path, **kw):
    kw.setdefault("cloud", CloudConfig(cloud_name="test"))
    kw.setdefault("attach_mode", "baremetal")
    kw.setdefault("metadata_url", "http://127.0.0.1:9")
    return StorageConfig(state_dir=str(tmp_path / "state"), **kw)


class FakeBrick:
    def __init__(self, ip="10.0.0.5", error=None):
        self.ip, self.error = ip, error

    def connector_properties(self, host_ip, host_name=None):
        if self.error:
            raise self.error
        return {"ip": self.ip, "host": host_name, "initiator": "iqn.2004-10.com.ubuntu:01:abc", "multipath": False}


def host_checks(tmp_path, cfg=None, host=None, brick=None, **run) -> dict:
    cfg = cfg or config(tmp_path)
    host = host or FakeHost(tmp_path / "host", **EVERYTHING)
    diagnosis = HostDiagnosis(cfg, host.facts(), brick or FakeBrick())
    checks = [diagnosis.attach_mode_check(), *diagnosis.run(**run)]
    return {c.what: c for c in checks}


# -- Check itself ---------------------------------------------------------------------

def test_a_check_that_is_not_ok_must_say_what_to_do():
    with pytest.raises(ValueError, match="is FAIL but says no fix"):
        Check("cloud", "auth", FAIL, "refused")
    with pytest.raises(ValueError, match="'BAD' is not one of OK, INFO, WARN, FAIL"):
        Check("cloud", "auth", "BAD", "refused", "fix it")
    assert Check("host", "iSCSI", INFO, "missing iscsiadm").fix == ""


# -- kernel facts ---------------------------------------------------------------------

def test_host_facts_tell_loaded_built_in_installed_and_missing_modules(tmp_path):
    facts = FakeHost(tmp_path, loaded=("iscsi_tcp",), builtin=("xfs",), installed=("nvme-tcp",)).facts()
    assert facts.module("iscsi_tcp") == "loaded"
    assert facts.module("xfs") == "built in"
    assert facts.module("nvme_tcp") == "installed"  # a file named nvme-tcp.ko.xz is module nvme_tcp
    assert facts.module("rbd") is None
    assert facts.filesystems() == {"ext4", "xfs"}


def test_a_missing_tool_and_module_are_named_with_the_package_and_modprobe(tmp_path):
    checks = host_checks(tmp_path, host=FakeHost(tmp_path, installed=("nvme_tcp",)))
    iscsi = checks["iSCSI"]
    assert iscsi.status == INFO  # no problem unless a backend exports iSCSI
    assert iscsi.found == "missing iscsiadm, module iscsi_tcp"
    assert iscsi.fix == ("needed when a Cinder backend exports iSCSI (LVM, most arrays): "
                         "apt-get install open-iscsi (iscsiadm); modprobe iscsi_tcp")


def test_a_kernel_without_a_module_tree_is_told_to_boot_another_kernel_not_to_modprobe(tmp_path):
    checks = host_checks(tmp_path, host=FakeHost(tmp_path, tools=("nvme",), modules_dir=False))
    nvme = checks["NVMe-oF"]
    assert nvme.found == "missing /dev/nvme-fabrics, module nvme_tcp"
    assert "modprobe" not in nvme.fix
    assert f"boot a kernel with nvme_fabrics and nvme_tcp built in, or install the modules of kernel {RELEASE}" \
        in nvme.fix


# -- attach paths, file systems, shares ----------------------------------------------

def test_attach_paths_ok_when_their_tools_and_modules_are_there(tmp_path):
    checks = host_checks(tmp_path)
    for title in ("iSCSI", "NVMe-oF", "RBD (Ceph)", "local (loop devices)"):
        assert checks[title].status == OK, checks[title]
    assert checks["Fibre Channel"].status == INFO  # no HBA in the fake /sys
    assert checks["bare-metal attach paths"] == Check(
        "host", "bare-metal attach paths", OK, "usable here: iSCSI, NVMe-oF, RBD (Ceph), local (loop devices)")


def test_a_host_that_can_attach_nothing_bare_metal_fails(tmp_path):
    checks = host_checks(tmp_path, host=FakeHost(tmp_path, filesystems=("ext4", "xfs"),
                                                 tools=("mkfs.ext4", "mkfs.xfs", "blkid")))
    verdict = checks["bare-metal attach paths"]
    assert verdict.status == FAIL and "attach_mode = nova" in verdict.fix


def test_the_default_fstype_missing_fails_another_allowed_one_warns(tmp_path):
    host = FakeHost(tmp_path, filesystems=("ext4",), devices=("loop-control",), tools=("mkfs.ext4", "blkid"))
    checks = host_checks(tmp_path, host=host)
    assert checks["ext4 file systems"].status == OK
    xfs = checks["xfs file systems"]
    assert xfs.status == WARN and xfs.found == "missing mkfs.xfs, module xfs"
    assert xfs.fix == "apt-get install xfsprogs (mkfs.xfs); modprobe xfs"
    cfg = config(tmp_path, limits=VolumeLimits(default_fstype="xfs"))
    assert host_checks(tmp_path, cfg=cfg, host=host)["xfs file systems"].status == FAIL


def test_share_clients_default_protocol_warns_others_inform(tmp_path):
    host = FakeHost(tmp_path, filesystems=("ext4", "xfs", "fuse"), devices=("loop-control", "fuse"),
                    tools=("mkfs.ext4", "mkfs.xfs", "blkid", "mount.glusterfs", "mount.nfs"))
    checks = host_checks(tmp_path, host=host)  # default_share_proto NFS, no NFS client in the kernel
    nfs = checks["NFS shares (default_share_proto)"]
    assert nfs.status == WARN and nfs.found == "missing module nfs"
    assert nfs.fix.endswith("or set default_share_proto to a protocol this host mounts")
    assert checks["GlusterFS shares"].status == OK
    ceph = checks["CephFS shares (ceph-fuse)"]
    assert ceph.status == INFO and ceph.fix.startswith("needed for -o proto=cephfs: apt-get install ceph-fuse")
    # Shares the default backend: a host that cannot mount them fails.
    shares_first = config(tmp_path, default_backend="manila")
    assert host_checks(tmp_path, cfg=shares_first, host=host)["NFS shares (default_share_proto)"].status == FAIL


def test_the_cephfs_kernel_client_is_checked_when_configured(tmp_path):
    host = FakeHost(tmp_path, **EVERYTHING)
    cfg = config(tmp_path, shares=ShareConfig(default_proto="CEPHFS", cephfs_client="kernel"))
    check = host_checks(tmp_path, cfg=cfg, host=host)["CephFS shares (kernel client) (default_share_proto)"]
    assert check.status == OK and check.found == f"{host.root}/tools/mount.ceph, module ceph loaded"


def test_no_share_checks_when_the_cloud_has_no_manila(tmp_path):
    checks = host_checks(tmp_path, manila_available=False)
    assert not [what for what in checks if "shares" in what]
    assert "GlusterFS shares" in host_checks(tmp_path, manila_available=None)  # unknown: checked


# -- os-brick and the attach mode ------------------------------------------------------

def test_a_loopback_connector_address_warns_unless_the_cloud_is_on_this_host(tmp_path):
    remote = host_checks(tmp_path, brick=FakeBrick(ip="127.0.0.1"))["os-brick connector"]
    assert remote.status == WARN and "set host_ip in the config" in remote.fix
    local = host_checks(tmp_path, brick=FakeBrick(ip="127.0.0.1"), cloud_is_local=True)["os-brick connector"]
    assert local.status == OK and "iSCSI initiator iqn.2004-10.com.ubuntu:01:abc" in local.found


def test_os_brick_failing_is_a_failure_with_its_reason(tmp_path):
    check = host_checks(tmp_path, brick=FakeBrick(error=AttachError("no privsep helper")))["os-brick connector"]
    assert check.status == FAIL and check.found == "no privsep helper"


def test_nova_mode_names_the_instance_and_its_source(tmp_path):
    checks = host_checks(tmp_path, cfg=config(tmp_path, attach_mode="nova", instance_id=INSTANCE,
                                              disk_root=str(tmp_path)))
    assert checks["attach mode"].found == (f"nova (as configured); instance {INSTANCE} from configured "
                                           "instance_id")
    assert checks["guest disk links"].status == OK
    assert "os-brick connector" not in checks and "iSCSI" not in checks


def test_nova_mode_without_an_instance_identity_fails_and_says_how_to_set_it(tmp_path):
    cfg = config(tmp_path, attach_mode="nova", cloud_init_dir=str(tmp_path / "none"),
                 dmi_uuid_path=str(tmp_path / "none"), disk_root=str(tmp_path / "no-udev"))
    checks = host_checks(tmp_path, cfg=cfg)
    mode = checks["attach mode"]
    assert mode.status == FAIL and "cannot tell which Nova instance this host is" in mode.found
    assert "instance_id" in mode.fix
    links = checks["guest disk links"]
    assert links.status == WARN and "systemd-udevd" in links.fix


def test_auto_picks_baremetal_without_local_evidence(tmp_path):
    cfg = config(tmp_path, attach_mode="auto", cloud_init_dir=str(tmp_path / "none"))
    assert host_checks(tmp_path, cfg=cfg)["attach mode"].found == "baremetal (auto: no local instance identity)"


def test_the_state_dir_missing_is_information_not_writable_fails(tmp_path):
    assert host_checks(tmp_path)["state dir"].status == INFO
    (tmp_path / "state").write_text("")
    check = host_checks(tmp_path)["state dir"]
    assert check.status == FAIL and check.found.endswith("is not a directory")


# -- the cloud --------------------------------------------------------------------------

class FakeProbe:
    def __init__(self, auth=None, endpoints=None, servers=None, auth_error=None, endpoint_error=None):
        self.auth = auth or AuthFacts("http://keystone.example:5000/v3", "fuxi", "project-a")
        self.endpoints = {"cinder": EndpointFacts("http://cinder/v3", (3, 0), (3, 71)),
                          "nova": EndpointFacts("http://nova/v2.1", (2, 1), (2, 96)),
                          "manila": EndpointFacts("http://manila/v2", (2, 0), (2, 84))}
        self.endpoints.update(endpoints or {})
        self.servers = servers if servers is not None else {INSTANCE: {"name": "host-a", "status": "ACTIVE"}}
        self.auth_error, self.endpoint_error = auth_error, endpoint_error

    def authenticate(self):
        if self.auth_error:
            raise self.auth_error
        return self.auth

    def endpoint(self, service):
        if self.endpoint_error and service in self.endpoint_error:
            raise self.endpoint_error[service]
        return self.endpoints.get(service)

    def server(self, server_id):
        return self.servers.get(server_id)


def cloud_checks(tmp_path, probe=None, attach_mode="baremetal", instance=None, **kw) -> dict:
    cfg = config(tmp_path, **kw)
    diagnosis = CloudDiagnosis(cfg, attach_mode, instance, lambda _config: probe or FakeProbe())
    checks = list(diagnosis.run())
    return {c.what: c for c in checks} | {"_order": [c.what for c in checks], "_diagnosis": diagnosis}


def test_a_healthy_cloud_passes_every_check_in_order(tmp_path):
    checks = cloud_checks(tmp_path, attach_mode="nova", instance=INSTANCE)
    assert checks["_order"] == ["cloud configured", "Keystone auth", "Cinder in the catalog", "Nova in the catalog",
                                "Manila in the catalog", "Cinder API microversions", "Nova API microversions",
                                "Manila API microversions", "this host's Nova server"]
    assert all(checks[w].status == OK for w in checks["_order"]), checks
    assert checks["Keystone auth"].found == "token from http://keystone.example:5000/v3 for user fuxi, project project-a"
    assert checks["Cinder API microversions"].found == "3.0 to 3.71 (needs 3.27)"
    assert checks["this host's Nova server"].found == f"host-a ({INSTANCE}) is ACTIVE"
    assert checks["_diagnosis"].manila_available is True


def test_no_cloud_configured_fails_with_how_to_configure(tmp_path):
    checks = cloud_checks(tmp_path, cloud=CloudConfig())
    assert checks["_order"] == ["cloud configured"]
    assert checks["cloud configured"].status == FAIL and "OS_CLOUD" in checks["cloud configured"].fix


def test_a_cloud_missing_from_clouds_yaml_fails_naming_the_entry(tmp_path):
    def no_entry(_config):
        raise ConfigError("cannot use cloud 'nosuch': Cloud nosuch was not found.")
    diagnosis = CloudDiagnosis(config(tmp_path, cloud=CloudConfig(cloud_name="nosuch")), "baremetal", None, no_entry)
    [check] = list(diagnosis.run())
    assert check.status == FAIL and check.found == "cannot use cloud 'nosuch': Cloud nosuch was not found."
    assert check.fix.startswith("add an entry 'nosuch' under `clouds:` in clouds.yaml")


@pytest.mark.parametrize("error, found, fix", [
    (ks_exceptions.Unauthorized("nope"), "Keystone refused the credentials of cloud 'test' (HTTP 401)",
     "correct the username and password"),
    (ks_exceptions.ConnectFailure("refused"), "cannot reach Keystone for cloud 'test': refused",
     "check auth_url in the clouds.yaml entry 'test'"),
    (ks_exceptions.SSLError("bad cert"), "TLS to Keystone failed for cloud 'test': bad cert", "set cacert"),
])
def test_auth_failures_say_which_and_skip_the_rest(tmp_path, error, found, fix):
    checks = cloud_checks(tmp_path, FakeProbe(auth_error=error))
    assert checks["_order"] == ["cloud configured", "Keystone auth", "catalog and API versions"]
    auth = checks["Keystone auth"]
    assert (auth.status, auth.found) == (FAIL, found) and auth.fix.startswith(fix)
    assert checks["catalog and API versions"].status == INFO


def test_an_unscoped_token_fails(tmp_path):
    checks = cloud_checks(tmp_path, FakeProbe(auth=AuthFacts("http://k/v3", "fuxi", None)))
    assert checks["Keystone auth"].status == FAIL and "project_name" in checks["Keystone auth"].fix


def test_catalog_gaps_fail_for_what_fuxi_needs_and_warn_for_manila(tmp_path):
    checks = cloud_checks(tmp_path, FakeProbe(endpoints={"cinder": None, "manila": None}))
    assert checks["Cinder in the catalog"].status == FAIL
    manila = checks["Manila in the catalog"]
    assert manila.status == WARN and "set backends = cinder" in manila.fix
    assert checks["_diagnosis"].manila_available is False
    shares_first = cloud_checks(tmp_path, FakeProbe(endpoints={"manila": None}), default_backend="manila")
    assert shares_first["Manila in the catalog"].status == FAIL
    nova = cloud_checks(tmp_path, FakeProbe(endpoints={"nova": None}), attach_mode="nova", instance=INSTANCE)
    assert nova["Nova in the catalog"].status == FAIL and "this host's Nova server" not in nova


def test_an_endpoint_that_does_not_answer_fails(tmp_path):
    probe = FakeProbe(endpoint_error={"cinder": ks_exceptions.ConnectFailure("no route to host")})
    check = cloud_checks(tmp_path, probe)["Cinder in the catalog"]
    assert check.status == FAIL and "no route to host" in check.found and "interface" in check.fix


def test_microversions_too_old_for_bare_metal_fail_and_for_nova_warn(tmp_path):
    old_cinder = FakeProbe(endpoints={"cinder": EndpointFacts("http://c", (3, 0), (3, 40))})
    bare = cloud_checks(tmp_path, old_cinder)["Cinder API microversions"]
    assert bare.status == FAIL and "complete 3.44" in bare.found
    assert cloud_checks(tmp_path, old_cinder, attach_mode="nova", instance=INSTANCE)[
        "Cinder API microversions"].status == OK  # Nova mode needs 3.27 only
    old_nova = FakeProbe(endpoints={"nova": EndpointFacts("http://n", (2, 1), (2, 53))})
    nova = cloud_checks(tmp_path, old_nova, attach_mode="nova", instance=INSTANCE)["Nova API microversions"]
    assert nova.status == WARN and nova.found == "2.1 to 2.53; below 2.60 (multiattach volumes)"
    pinned = FakeProbe(endpoints={"cinder": EndpointFacts("http://c", (3, 0), (3, 71), pinned=(3, 40))})
    capped = cloud_checks(tmp_path, pinned)["Cinder API microversions"]
    assert capped.status == FAIL and capped.found.startswith("3.0 to 3.71, pinned to 3.40 by the cloud config")
    assert capped.fix.startswith("unpin block_storage_api_version")
    no_versions = FakeProbe(endpoints={"manila": EndpointFacts("http://m", None, None)})
    assert cloud_checks(tmp_path, no_versions)["Manila API microversions"].status == WARN


def test_this_hosts_server_missing_fails_and_stopped_warns(tmp_path):
    missing = cloud_checks(tmp_path, FakeProbe(servers={}), attach_mode="nova", instance=INSTANCE)
    assert missing["this host's Nova server"].status == FAIL
    assert "set instance_id" in missing["this host's Nova server"].fix
    stopped = FakeProbe(servers={INSTANCE: {"name": "host-a", "status": "SHUTOFF"}})
    assert cloud_checks(tmp_path, stopped, attach_mode="nova", instance=INSTANCE)[
        "this host's Nova server"].status == WARN


def test_a_diagnosis_runs_the_attach_mode_then_the_cloud_then_the_host(tmp_path):
    cfg = config(tmp_path)
    host = FakeHost(tmp_path / "host", **EVERYTHING)
    local_cloud = FakeProbe(auth=AuthFacts("http://127.0.0.1:5000/v3", "fuxi", "p"))
    diagnosis = Diagnosis(cfg, host.facts(), FakeBrick(ip="127.0.0.1"), lambda _c: local_cloud)
    checks = list(diagnosis.run())
    areas = [c.area for c in checks]
    assert areas[0] == "host" and checks[0].what == "attach mode"
    assert areas.index("cloud") < len(areas) - areas[::-1].index("cloud") <= areas.index("host", 1)
    # Keystone on loopback: the cloud runs here, a loopback connector address is right.
    assert next(c for c in checks if c.what == "os-brick connector").status == OK


def test_loopback_urls():
    assert is_loopback_url("http://127.0.0.1:5000/v3")
    assert is_loopback_url("http://localhost/identity")
    assert not is_loopback_url("https://keystone.example.com/v3")
    assert not is_loopback_url(None)
