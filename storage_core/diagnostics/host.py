"""The host checks: how volumes reach it, os-brick's connector, kernel support
for each attach path, file system and share protocol, the state dir."""

import dataclasses
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterator

from storage_core.config import StorageConfig
from storage_core.diagnostics.checks import FAIL, INFO, OK, WARN, Check, not_checked
from storage_core.errors import ConfigError, StorageError
from storage_core.host import HostIdentity, InstanceLocator

# -- the host's kernel and tools ------------------------------------------------

# Where root's tools live, whatever PATH the caller has.
_TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HostFacts:
    """What the kernel and the installed tools offer, read from /proc, /sys,
    /dev and /lib/modules (roots replaceable for tests)."""

    def __init__(self, proc="/proc", sys="/sys", dev="/dev", modules_root="/lib/modules", release=None,
                 tool_path=None):
        self._proc, self._sys, self._dev = proc, sys, dev
        self._modules_root = modules_root
        self.release = release or os.uname().release
        self._tool_path = tool_path if tool_path is not None else os.environ.get("PATH", "") + ":" + _TOOL_PATH
        self._module_index = None

    def filesystems(self) -> set[str]:
        """File systems the running kernel has now (built in or loaded)."""
        try:
            with open(os.path.join(self._proc, "filesystems"), encoding="utf-8") as f:
                return {line.split()[-1] for line in f if line.strip()}
        except OSError:
            return set()

    def _modules(self) -> tuple[set, set]:
        """(built-in, installed) module names of the running kernel, '-' read as '_'."""
        if self._module_index is None:
            directory = os.path.join(self._modules_root, self.release)
            self._module_index = (self._module_names(os.path.join(directory, "modules.builtin")),
                                  self._module_names(os.path.join(directory, "modules.dep")))
        return self._module_index

    @staticmethod
    def _module_names(path) -> set[str]:
        names = set()
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    module_path = line.split(":", 1)[0].strip()
                    if module_path:
                        names.add(os.path.basename(module_path).split(".ko")[0].replace("-", "_"))
        except OSError:
            pass
        return names

    def module(self, name) -> str | None:
        """"loaded", "built in", "installed" (modprobe can load it) or None."""
        name = name.replace("-", "_")
        if os.path.isdir(os.path.join(self._sys, "module", name)):
            return "loaded"
        builtin, installed = self._modules()
        if name in builtin:
            return "built in"
        if name in installed:
            return "installed"
        return None

    def modules_dir_present(self) -> bool:
        return os.path.isdir(os.path.join(self._modules_root, self.release))

    def device(self, name) -> bool:
        return os.path.exists(os.path.join(self._dev, name))

    def sys_entries(self, relative) -> list[str]:
        try:
            return sorted(os.listdir(os.path.join(self._sys, relative)))
        except OSError:
            return []

    def tool(self, name) -> str | None:
        return shutil.which(name, path=self._tool_path)


@dataclass(frozen=True)
class Need:
    """One thing a protocol needs: how to tell it is there, and how to get it."""

    label: str
    present: Callable[[HostFacts], str | None]  # what was found, or None when missing
    remedy: str
    # The kernel module that provides it, if one does.
    module: str | None = None


def _tool(name, package) -> Need:
    return Need(name, lambda facts: facts.tool(name), f"apt-get install {package} ({name})")


def _kernel_module(name, also_fs=()) -> Need:
    """A kernel module, or (for a file system) the kernel already offering it
    under any of the names `also_fs`."""
    names = (also_fs,) if isinstance(also_fs, str) else tuple(also_fs)

    def present(facts):
        offered = facts.filesystems()
        for fs in names:
            if fs in offered:
                return f"{fs} in /proc/filesystems"
        state = facts.module(name)
        return f"module {name} {state}" if state else None
    return Need(f"module {name}", present, f"modprobe {name}", module=name)


def _device(name, module) -> Need:
    def present(facts):
        if facts.device(name):
            return f"/dev/{name}"
        state = facts.module(module)
        return f"module {module} {state}" if state else None
    return Need(f"/dev/{name}", present, f"modprobe {module}", module=module)


def _fc_hba() -> Need:
    def present(facts):
        hosts = facts.sys_entries("class/fc_host")
        return f"FC hosts {', '.join(hosts)}" if hosts else None
    return Need("a Fibre Channel HBA", present, "fit a Fibre Channel HBA and load its driver")


@dataclass(frozen=True)
class Protocol:
    title: str
    needs: tuple
    # Shown with an INFO: when the protocol matters at all.
    when: str = ""


# os-brick's connectors for the protocols Cinder backends export, and what each
# needs on this host. "local" is the loop device a test driver (devcloud's, or
# contrib's for real Cinder) hands out.
ATTACH_PROTOCOLS = (
    Protocol("iSCSI", (_tool("iscsiadm", "open-iscsi"), _kernel_module("iscsi_tcp")),
             "needed when a Cinder backend exports iSCSI (LVM, most arrays)"),
    Protocol("NVMe-oF", (_tool("nvme", "nvme-cli"), _device("nvme-fabrics", "nvme_fabrics"),
                         _kernel_module("nvme_tcp")),
             "needed when a Cinder backend exports NVMe over TCP"),
    Protocol("RBD (Ceph)", (_tool("rbd", "ceph-common"), _kernel_module("rbd")),
             "needed when a Cinder backend is Ceph RBD"),
    Protocol("Fibre Channel", (_fc_hba(),), "needed when a Cinder backend exports FC"),
    Protocol("local (loop devices)", (_device("loop-control", "loop"),),
             "needed by test drivers that hand out loop devices (devcloud)"),
)


def share_protocol(proto, cephfs_client="fuse") -> Protocol:
    if proto == "NFS":
        return Protocol("NFS shares", (_tool("mount.nfs", "nfs-common"), _kernel_module("nfs", also_fs=("nfs", "nfs4"))))
    if proto == "GLUSTERFS":
        return Protocol("GlusterFS shares", (_tool("mount.glusterfs", "glusterfs-client"),
                                             _device("fuse", "fuse")))
    if proto == "CEPHFS" and cephfs_client == "kernel":
        return Protocol("CephFS shares (kernel client)", (_tool("mount.ceph", "ceph-common"),
                                                          _kernel_module("ceph", also_fs="ceph")))
    return Protocol("CephFS shares (ceph-fuse)", (_tool("ceph-fuse", "ceph-fuse"), _device("fuse", "fuse")))


def _fstype_protocol(fstype) -> Protocol:
    package = {"ext4": "e2fsprogs", "xfs": "xfsprogs"}.get(fstype, fstype)
    return Protocol(f"{fstype} file systems", (_tool(f"mkfs.{fstype}", package), _tool("blkid", "util-linux"),
                                               _kernel_module(fstype, also_fs=fstype)))


def _support(facts, protocol: Protocol) -> tuple[list[str], list[Need]]:
    found, missing = [], []
    for need in protocol.needs:
        seen = need.present(facts)
        if seen:
            found.append(seen)
        else:
            missing.append(need)
    return found, missing


def _protocol_check(facts, area, protocol, status_if_missing) -> tuple[Check, bool]:
    found, missing = _support(facts, protocol)
    if not missing:
        return Check(area, protocol.title, OK, ", ".join(found)), True
    absent = ", ".join(n.label for n in missing)
    remedies = [n.remedy for n in missing if not (n.module and not facts.modules_dir_present())]
    unloadable = [n.module for n in missing if n.module and not facts.modules_dir_present()]
    if unloadable:
        # modprobe would fail: the running kernel has no module tree to load from.
        remedies.append(f"boot a kernel with {' and '.join(unloadable)} built in, or install the modules "
                        f"of kernel {facts.release} (/lib/modules/{facts.release} is missing)")
    fix = "; ".join(remedies)
    if status_if_missing == INFO and protocol.when:
        fix = f"{protocol.when}: {fix}"
    return Check(area, protocol.title, status_if_missing, f"missing {absent}", fix), False


class HostDiagnosis:
    """Host checks: the attach mode and identity first (the cloud checks need
    them), then os-brick, the attach paths, file systems and share clients."""

    def __init__(self, config: StorageConfig, facts: HostFacts | None = None, brick=None,
                 locator: InstanceLocator | None = None):
        self.config = config
        self.facts = facts or HostFacts()
        self._brick = brick
        self._locator = locator or InstanceLocator.from_config(config)
        self.attach_mode = None
        self.instance_uuid = None

    def attach_mode_check(self) -> Check:
        from storage_core.factory import choose_attach_mode

        config = self.config
        if "cinder" not in config.backends:
            return not_checked("host", "attach mode", "Cinder is not among the backends")
        mode = choose_attach_mode(config, self._locator)
        how = "as configured" if config.attach_mode != "auto" else (
            "auto: " + (self._locator.local_evidence() or "no local instance identity"))
        self.attach_mode = mode
        if mode == "baremetal":
            return Check("host", "attach mode", OK, f"baremetal ({how})")
        try:
            instance = self._locator.find()
        except ConfigError as exc:
            return Check("host", "attach mode", FAIL, f"nova ({how}), but {exc}",
                         "set instance_id in the config, or attach_mode = baremetal if this host is no Nova instance")
        self.instance_uuid = instance.uuid
        return Check("host", "attach mode", OK, f"nova ({how}); instance {instance.uuid} from {instance.source}")

    def run(self, cloud_is_local=False, manila_available=None) -> Iterator[Check]:
        """The checks after attach_mode_check(). cloud_is_local: the cloud runs on
        this host (loopback addresses are right); manila_available: whether the
        cloud offers Manila (None: unknown, the share clients are checked)."""
        config = self.config
        if self.attach_mode == "baremetal":
            yield self._connector_check(cloud_is_local)
            yield from self._attach_path_checks()
        elif self.attach_mode == "nova":
            yield self._disk_links_check()
        if "cinder" in config.backends:
            for fstype in config.limits.allowed_fstypes:
                status = FAIL if fstype == config.limits.default_fstype else WARN
                yield _protocol_check(self.facts, "host", _fstype_protocol(fstype), status)[0]
        if "manila" in config.backends and manila_available is not False:
            yield from self._share_checks()
        yield self._state_dir_check()

    def _connector_check(self, cloud_is_local) -> Check:
        config = self.config
        host = HostIdentity.detect(config.host_name, config.host_ip)
        try:
            brick = self._brick
            if brick is None:
                from storage_core.attach.brick import Brick

                # os-brick wants a lock directory; a check must not be what makes the state dir.
                brick = Brick(config.lock_dir if os.path.isdir(config.state_dir) else tempfile.gettempdir())
            props = brick.connector_properties(host.ip, host.name)
        except StorageError as exc:
            return Check("host", "os-brick connector", FAIL, str(exc),
                         "run as root, and install os-brick's helpers for the protocols in use")
        shown = [f"ip {props.get('ip')}", f"host {props.get('host')}",
                 f"iSCSI initiator {props.get('initiator') or 'none'}",
                 f"NVMe host NQN {props.get('nqn') or 'none'}",
                 f"multipath {'on' if props.get('multipath') else 'off'}"]
        found = ", ".join(shown)
        try:
            loopback = ipaddress.ip_address(str(props.get("ip"))).is_loopback
        except ValueError:
            loopback = False
        if loopback and not cloud_is_local:
            return Check("host", "os-brick connector", WARN,
                         f"{found}: storage backends cannot reach a loopback address",
                         "set host_ip in the config to this host's address on the storage network "
                         f"(the host name {host.name!r} resolves to {host.ip})")
        return Check("host", "os-brick connector", OK, found)

    def _attach_path_checks(self) -> Iterator[Check]:
        usable = []
        for protocol in ATTACH_PROTOCOLS:
            check, supported = _protocol_check(self.facts, "host", protocol, INFO)
            if supported:
                usable.append(protocol.title)
            yield check
        if usable:
            yield Check("host", "bare-metal attach paths", OK, f"usable here: {', '.join(usable)}")
        else:
            yield Check("host", "bare-metal attach paths", FAIL, "this host can attach no Cinder volume bare metal",
                        "install the initiator of your Cinder backend's protocol (see the lines above), or "
                        "set attach_mode = nova on a Nova instance")

    def _disk_links_check(self) -> Check:
        root = self.config.disk_root
        if os.path.isdir(root):
            return Check("host", "guest disk links", OK, f"{root} exists (udev makes by-id links there)")
        return Check("host", "guest disk links", WARN, f"{root} does not exist: udev is not running",
                     "start udev (`systemctl start systemd-udevd`, or `/lib/systemd/systemd-udevd --daemon`); "
                     "without it attached disks are found only through the metadata service's device tags")

    def _share_checks(self) -> Iterator[Check]:
        shares = self.config.shares
        default_status = FAIL if self.config.default_backend == "manila" else WARN
        for proto in ("NFS", "CEPHFS", "GLUSTERFS"):
            protocol = share_protocol(proto, shares.cephfs_client)
            if proto == shares.default_proto:
                protocol = Protocol(protocol.title + " (default_share_proto)", protocol.needs)
                check, supported = _protocol_check(self.facts, "host", protocol, default_status)
                if not supported:
                    check = dataclasses.replace(
                        check, fix=check.fix + ", or set default_share_proto to a protocol this host mounts")
            else:
                protocol = Protocol(protocol.title, protocol.needs,
                                    f"needed for -o proto={proto.lower()}")
                check, _ = _protocol_check(self.facts, "host", protocol, INFO)
            yield check

    def _state_dir_check(self) -> Check:
        path = self.config.state_dir
        if not os.path.exists(path):
            return Check("host", "state dir", INFO, f"{path} does not exist yet (made at the first start)")
        if not os.path.isdir(path):
            return Check("host", "state dir", FAIL, f"{path} is not a directory",
                         f"move {path} away, or set state_dir in the config to a directory")
        if not os.access(path, os.W_OK):
            return Check("host", "state dir", FAIL, f"{path} is not writable by this user",
                         "run as root (attaching and mounting need it)")
        free = shutil.disk_usage(path).free
        return Check("host", "state dir", OK, f"{path} ({free / 2**30:.1f} GiB free)")
