"""The guest's view of its disks: what udev and the config drive would show.

A real hypervisor hot-plugs a virtio disk whose serial is the volume id; the
guest's udev then names it ``/dev/disk/by-id/virtio-<id[:20]>`` and
``/dev/disk/by-path/[virtio-]pci-<address>``. Here the "disk" is the loop
device Cinder's export bound, and the links live under ``disk_root`` so tests
never touch the real /dev. Only the local server (the host fuxi runs on) is
"this guest"; other servers' disks are other guests' business.

The links on disk are always made to match a list the compute service
computes from its store (:meth:`Hypervisor.sync`), so a restart, a changed
option or a crash in the middle of an update all end the same way.
"""

import json
import logging
import math
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, fields, replace

LOG = logging.getLogger(__name__)

DEFAULT_SERVER_NAME = "devcloud-host"
DISK_ROOT_NAME = "dev-disk"
CONFIG_DRIVE_NAME = "config-drive"
META_DATA_PATH = os.path.join("openstack", "latest", "meta_data.json")
# virtio-blk keeps only the first 20 bytes of the serial.
VIRTIO_SERIAL_LENGTH = 20
# Link names we own in by-id/by-path; anything else there is left alone.
_OUR_PREFIXES = ("virtio-", "pci-")


@dataclass(frozen=True)
class HypervisorOptions:
    """How the emulated hypervisor and guest udev behave.

    ``disk_root`` / ``config_drive_dir`` None mean "under the state dir";
    ``config_drive_dir`` "" means no config drive at all.
    """

    server_name: str = DEFAULT_SERVER_NAME
    disk_root: str | None = None
    config_drive_dir: str | None = None
    #: seconds between the hot-plug and udev's links (slow udev)
    link_delay: float = 0.0
    #: False: udev makes no by-id link (some guests), only by-path ones
    create_by_id_links: bool = True
    #: True: Nova reports /dev/vdb for every disk, as a confused one would
    lie_about_device: bool = False

    def __post_init__(self):
        if not isinstance(self.server_name, str) or not 1 <= len(self.server_name) <= 255:
            raise ValueError(f"server_name must be a string of 1-255 characters, "
                             f"not {self.server_name!r}")
        for name in ("disk_root", "config_drive_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"{name} must be a path, not {value!r}")
        delay = self.link_delay
        if (isinstance(delay, bool) or not isinstance(delay, (int, float))
                or not math.isfinite(delay) or delay < 0):
            raise ValueError(f"link_delay must be a number >= 0, not {delay!r}")
        for name in ("create_by_id_links", "lie_about_device"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false, not {getattr(self, name)!r}")

    def updated(self, changes: dict) -> "HypervisorOptions":
        """A copy with ``changes`` (JSON from the control API) applied."""
        if not isinstance(changes, dict):
            raise TypeError("expected a JSON object of hypervisor options")
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown hypervisor options: {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def resolved(self, state_dir) -> "HypervisorOptions":
        """Defaults filled in: absolute directories under ``state_dir``."""
        disk_root = self.disk_root
        if disk_root is None:
            disk_root = os.path.join(state_dir, DISK_ROOT_NAME)
        drive = self.config_drive_dir
        if drive is None:
            drive = os.path.join(state_dir, CONFIG_DRIVE_NAME)
        return replace(
            self,
            disk_root=os.path.abspath(os.fspath(disk_root)),
            config_drive_dir=os.path.abspath(os.fspath(drive)) if drive else "",
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GuestDisk:
    """One disk the local guest sees, as the links need it."""

    volume_id: str
    pci_address: str
    device: str  # the loop device standing in for /dev/vdX


def by_id_name(volume_id) -> str:
    return f"virtio-{volume_id[:VIRTIO_SERIAL_LENGTH]}"


def by_path_names(pci_address) -> list[str]:
    # systemd's udev makes both: pci-<addr> and the older virtio-pci-<addr>.
    return [f"virtio-pci-{pci_address}", f"pci-{pci_address}"]


class Hypervisor:
    """Keeps ``<disk_root>/by-id``, ``by-path`` and the config drive up to date."""

    def __init__(self, options):
        """``options`` is a callable returning the resolved HypervisorOptions."""
        self._options = options
        self._lock = threading.Lock()

    def wanted_links(self, disks) -> dict:
        """{relative link path: target device} for ``disks``."""
        options = self._options()
        wanted = {}
        for disk in disks:
            if options.create_by_id_links:
                wanted[os.path.join("by-id", by_id_name(disk.volume_id))] = disk.device
            for name in by_path_names(disk.pci_address):
                wanted[os.path.join("by-path", name)] = disk.device
        return wanted

    def sync(self, disks, meta_data=None, old_disk_root=None) -> None:
        """Make the links match ``disks`` exactly; rewrite the config drive.

        ``old_disk_root``: a previous root whose links must go (option change).
        """
        options = self._options()
        wanted = self.wanted_links(disks)
        with self._lock:
            if old_disk_root and os.path.abspath(old_disk_root) != options.disk_root:
                self._apply(old_disk_root, {})
            self._apply(options.disk_root, wanted)
            if meta_data is not None and options.config_drive_dir:
                self._write_config_drive(options.config_drive_dir, meta_data)

    def _apply(self, root, wanted):
        for sub in ("by-id", "by-path"):
            directory = os.path.join(root, sub)
            os.makedirs(directory, exist_ok=True)
            for name in os.listdir(directory):
                rel = os.path.join(sub, name)
                path = os.path.join(root, rel)
                if (rel not in wanted and name.startswith(_OUR_PREFIXES)
                        and os.path.islink(path)):
                    os.unlink(path)
                    LOG.info("guest udev: removed %s", path)
        for rel, device in wanted.items():
            path = os.path.join(root, rel)
            try:
                if os.readlink(path) == device:
                    continue
            except OSError:
                pass
            # udev swaps links atomically; so do we, so a reader never sees
            # a missing or half-made link for a disk that stays attached.
            tmp = os.path.join(os.path.dirname(path), f".tmp-{os.path.basename(path)}")
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(device, tmp)
            os.replace(tmp, path)
            LOG.info("guest udev: %s -> %s", path, device)

    @staticmethod
    def _write_config_drive(directory, meta_data):
        path = os.path.join(directory, META_DATA_PATH)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(meta_data, f, indent=2, sort_keys=True)
                f.write("\n")
            os.chmod(tmp, 0o644)  # a mounted config drive is world-readable
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
