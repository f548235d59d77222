"""Find the guest disk of a Nova-attached volume by its serial.

The hypervisor gives the disk the volume id as serial, and udev names links
after it under /dev/disk/by-id. That is the only trustworthy key: the device
name Nova reports is a guess the guest kernel often contradicts, and sizes or
"the disk that just appeared" match the wrong volume as soon as two attach at
once. Hence no device names, no sizes, no diffing of /sys/block here.
"""

import glob
import logging
import os
import re

from storage_core.errors import AttachError, CommandError, Timeout
from storage_core.waits import Clock, wait_until

LOG = logging.getLogger(__name__)

# virtio-blk keeps 20 bytes of the serial; virtio-scsi/QEMU keeps it whole.
VIRTIO_SERIAL_LENGTH = 20
# Asking the kernel and udev to look again costs a little; once a second is
# enough to recover a lost hotplug event without hammering the host.
RESCAN_INTERVAL = 1.0
UDEVADM_TIMEOUT = 10.0
UDEV_TRIGGER = ("udevadm", "trigger", "--action=add", "--subsystem-match=block")

_PCI_ADDRESS = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")


def by_id_names(volume_id) -> list[str]:
    """The /dev/disk/by-id link names udev may give the volume's disk, most likely first."""
    short = volume_id[:VIRTIO_SERIAL_LENGTH]
    names = [f"virtio-{short}", f"virtio-{volume_id}"]
    names += [f"scsi-0QEMU_QEMU_HARDDISK_{short}", f"scsi-0QEMU_QEMU_HARDDISK_{volume_id}"]
    return list(dict.fromkeys(names))  # a short id would list the same name twice


def _is_partition(name) -> bool:
    return "-part" in name


class DeviceFinder:
    """Waits for a volume's disk to appear in this guest and returns its device path.

    meta_data: a callable returning Nova's meta_data.json (a dict) or None; its
    `devices` list maps a serial to a bus address, for guests whose udev makes
    no by-id link. It is asked only at rescan time, never on every poll.
    """

    def __init__(
        self,
        executor,
        disk_root="/dev/disk",
        sysfs_root="/sys",
        timeout=60.0,
        clock=None,
        meta_data=None,
        rescan_interval=RESCAN_INTERVAL,
    ):
        self._executor = executor
        self._disk_root = disk_root
        self._sysfs_root = sysfs_root
        self._timeout = timeout
        self._clock = clock or Clock()
        self._meta_data = meta_data
        self._rescan_interval = rescan_interval

    def find(self, volume_id, reported_device=None) -> str:
        """The real device path (e.g. /dev/vdc) of the volume's disk; AttachError if it never shows.

        reported_device is Nova's name for it, only logged when the guest disagrees.
        """
        looked_at = {}  # path -> None, ordered: the error lists what was tried
        last_rescan = self._clock.monotonic()

        def check():
            nonlocal last_rescan
            found = self._by_id(volume_id, looked_at)
            if found:
                return found
            now = self._clock.monotonic()
            if now - last_rescan < self._rescan_interval:
                return None
            last_rescan = now
            self._rescan()
            return self._by_id(volume_id, looked_at) or self._by_bus_address(volume_id, looked_at)

        start = self._clock.monotonic()
        try:
            device = wait_until(check, self._timeout, f"the disk of volume {volume_id}", self._clock)
        except Timeout:
            waited = self._clock.monotonic() - start
            raise AttachError(
                f"the disk of volume {volume_id} did not appear in this host within {waited:.1f} s "
                f"(looked for {', '.join(looked_at)}); Nova attached it, but the guest shows no disk "
                "with its serial: check the hypervisor and `udevadm monitor`"
            ) from None
        if reported_device and reported_device != device:
            LOG.info("volume %s is %s in this guest, not %s as Nova said", volume_id, device, reported_device)
        return device

    # -- where to look --------------------------------------------------

    def _by_id(self, volume_id, looked_at) -> str | None:
        by_id = os.path.join(self._disk_root, "by-id")
        paths = [os.path.join(by_id, name) for name in by_id_names(volume_id)]
        # Some hypervisors/backends expose a WWN that embeds the volume id.
        compact = glob.escape(volume_id.replace("-", "").lower())
        paths.append(os.path.join(by_id, f"wwn-0x*{compact}*"))
        for path in paths:
            looked_at[path] = None
            for candidate in sorted(glob.glob(path)) if "*" in path else [path]:
                if _is_partition(os.path.basename(candidate)):
                    continue
                device = _existing_target(candidate)
                if device:
                    LOG.info("volume %s found at %s -> %s", volume_id, candidate, device)
                    return device
        return None

    def _by_bus_address(self, volume_id, looked_at) -> str | None:
        """Fallback: Nova's device metadata gives the disk's bus address; udev's by-path link names it."""
        entry = self._metadata_entry(volume_id)
        if entry is None:
            return None
        address = str(entry.get("address") or "")
        if not _PCI_ADDRESS.match(address):
            # e.g. a SCSI "1:0:2:0": the guest numbers its SCSI hosts itself.
            LOG.debug("volume %s: metadata address %r is no PCI address; not used", volume_id, address)
            return None
        by_path = os.path.join(self._disk_root, "by-path")
        if str(entry.get("bus", "")).lower() == "scsi":
            # The controller's address; the disk's link adds "-scsi-h:c:t:l".
            patterns = [f"pci-{address}-*"]
        else:
            # virtio-blk: newer udev says virtio-pci-<address>, older pci-<address>.
            patterns = [f"virtio-pci-{address}", f"pci-{address}"]
        for pattern in (os.path.join(by_path, p) for p in patterns):
            looked_at[pattern] = None
            matches = [m for m in sorted(glob.glob(pattern)) if not _is_partition(os.path.basename(m))]
            if len(matches) > 1:
                # Several disks behind one controller: picking one would be a guess.
                LOG.warning("volume %s: %d disks match %s; not guessing", volume_id, len(matches), pattern)
                continue
            device = _existing_target(matches[0]) if matches else None
            if device and self._serial_agrees(device, volume_id):
                LOG.info("volume %s found by bus address %s at %s", volume_id, address, device)
                return device
        return None

    def _metadata_entry(self, volume_id) -> dict | None:
        if self._meta_data is None:
            return None
        try:
            meta = self._meta_data() or {}
        except Exception:  # a fallback source must not turn a slow attach into a failure
            LOG.warning("reading Nova metadata for volume %s failed", volume_id, exc_info=True)
            return None
        for entry in meta.get("devices") or []:
            if isinstance(entry, dict) and entry.get("serial") == volume_id:
                return entry
        return None

    def _serial_agrees(self, device, volume_id) -> bool:
        """A disk whose sysfs serial names another volume is not ours, whatever its address."""
        path = os.path.join(self._sysfs_root, "class", "block", os.path.basename(device), "serial")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                serial = f.read().strip()
        except OSError:
            return True  # no serial to check (e.g. SCSI disks keep it in VPD pages)
        if serial and not volume_id.startswith(serial):
            LOG.warning("%s has serial %r, not volume %s; ignored", device, serial, volume_id)
            return False
        return True

    # -- asking the host to look again ----------------------------------

    def _rescan(self) -> None:
        """Recover lost hotplug events: rescan SCSI hosts, replay udev block events."""
        for scan in sorted(glob.glob(os.path.join(self._sysfs_root, "class", "scsi_host", "host*", "scan"))):
            try:
                with open(scan, "w", encoding="ascii") as f:
                    f.write("- - -")
            except OSError as exc:
                LOG.warning("could not rescan %s: %s", scan, exc)
        try:
            self._executor.run(list(UDEV_TRIGGER), timeout=UDEVADM_TIMEOUT)
        except CommandError as exc:
            # Without udevadm the links may still come from udevd's own events.
            LOG.warning("udevadm trigger failed: %s", exc)


def _existing_target(link) -> str | None:
    """What the link points at, if that exists (a stale link from a detached disk does not count)."""
    if not os.path.lexists(link):
        return None
    target = os.path.realpath(link)
    return target if os.path.exists(target) else None
