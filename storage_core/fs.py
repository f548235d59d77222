"""File systems on block devices: probe, format only when blank, mount, unmount.

The one rule that keeps data safe: mkfs runs only after blkid proved the device
carries no signature at all, and never as a reaction to a failed mount.
"""

import logging
import os
from dataclasses import dataclass

from storage_core.errors import CommandError, FilesystemError, InvalidInput

LOG = logging.getLogger(__name__)

# blkid exits 2 when the device carries no signature it knows.
_BLKID_NOTHING_FOUND = 2

_MKFS_ARGV = {
    "ext4": ["mkfs.ext4", "-q"],
    "xfs": ["mkfs.xfs", "-q"],
}

# xfs refuses a second file system with a UUID already mounted, which is what a
# volume made from a snapshot or a clone of a volume mounted here carries.
_MOUNT_OPTIONS = {"xfs": ("-o", "nouuid")}

# Growing a mounted file system into its device: ext4 by device, xfs by mount point.
_GROW_ARGV = {
    "ext4": lambda device, mountpoint: ["resize2fs", device],
    "xfs": lambda device, mountpoint: ["xfs_growfs", mountpoint],
}
# A file system this much smaller than its device was made on, or grown to, a
# smaller device: volumes grow by whole GiB, while a grown file system may stop
# short of the device's end by a partial block group (ext4) or allocation group (xfs).
GROW_SLACK = 64 * 1024**2
_EXT4_MAGIC = 0xEF53
_EXT4_INCOMPAT_64BIT = 0x80


def device_size(device) -> int:
    """The size of a block device (or file) in bytes."""
    fd = os.open(device, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def filesystem_size(device, fstype) -> int | None:
    """How many bytes of `device` its ext4 or xfs file system spans, from its
    superblock (None: another type, or no superblock of that type)."""
    with open(device, "rb") as f:
        head = f.read(2048)
    if fstype == "ext4" and len(head) >= 2048:
        sb = head[1024:]
        if int.from_bytes(sb[56:58], "little") != _EXT4_MAGIC:
            return None
        blocks = int.from_bytes(sb[4:8], "little")
        if int.from_bytes(sb[96:100], "little") & _EXT4_INCOMPAT_64BIT:
            blocks |= int.from_bytes(sb[336:340], "little") << 32
        return blocks * (1024 << int.from_bytes(sb[24:28], "little"))
    if fstype == "xfs" and len(head) >= 16 and head[:4] == b"XFSB":
        return int.from_bytes(head[4:8], "big") * int.from_bytes(head[8:16], "big")
    return None


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    source: str
    fstype: str
    # The mount's own flags (a read-only bind of a writable file system is ro).
    read_only: bool = False
    # Which device the mounted file system is on (major:minor): what two bind
    # mounts of one file system have in common.
    device: str = ""


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def parse_mountinfo(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        parts = line.split(" ")
        try:
            sep = parts.index("-")
        except ValueError:
            continue
        entries.append(
            MountEntry(
                mountpoint=_unescape(parts[4]),
                fstype=parts[sep + 1],
                source=_unescape(parts[sep + 2]),
                read_only="ro" in parts[5].split(","),
                device=parts[2],
            )
        )
    return entries


class Filesystems:
    def __init__(self, executor, mountinfo_path="/proc/self/mountinfo"):
        self._executor = executor
        self._mountinfo_path = mountinfo_path

    def probe(self, device) -> dict[str, str]:
        """Every signature blkid finds on the device, as blkid's export keys (empty: blank)."""
        try:
            result = self._executor.run(
                ["blkid", "-p", "-o", "export", device],
                ok_exit_codes=(0, _BLKID_NOTHING_FOUND),
            )
        except CommandError as exc:
            raise FilesystemError(f"cannot probe {device} with blkid: {exc}") from exc
        if result.exit_code == _BLKID_NOTHING_FOUND:
            return {}
        found = {}
        for line in result.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                found[key.strip()] = value.strip()
        return found

    def ensure_filesystem(self, device, wanted_fstype) -> str:
        """Return the device's file system type, making one only if it is blank."""
        signatures = self.probe(device)
        existing = signatures.get("TYPE")
        if existing:
            if existing != wanted_fstype:
                LOG.warning(
                    "%s already holds %s (asked for %s): keeping it", device, existing, wanted_fstype
                )
            return existing
        if signatures:
            raise FilesystemError(
                f"{device} is not blank ({', '.join(sorted(signatures))} found) but holds no "
                "file system fuxi can mount; refusing to format it. Inspect it with blkid."
            )
        self.mkfs(device, wanted_fstype)
        return wanted_fstype

    def mkfs(self, device, fstype) -> None:
        if fstype not in _MKFS_ARGV:
            raise InvalidInput(f"fstype {fstype!r} is not supported; allowed: {', '.join(_MKFS_ARGV)}")
        LOG.info("formatting blank device %s as %s", device, fstype)
        try:
            self._executor.run(_MKFS_ARGV[fstype] + [device])
        except CommandError as exc:
            raise FilesystemError(f"mkfs of {device} as {fstype} failed: {exc}") from exc

    def mount(self, device, mountpoint, fstype) -> None:
        os.makedirs(mountpoint, exist_ok=True)
        try:
            self._executor.run(["mount", "-t", fstype, *_MOUNT_OPTIONS.get(fstype, ()), device, mountpoint])
        except CommandError as exc:
            raise FilesystemError(
                f"mounting {device} ({fstype}) at {mountpoint} failed: {exc}"
            ) from exc

    def smaller_than_device(self, device, fstype) -> bool:
        """True when the (unmounted) file system ends well before its device does:
        the volume grew while it was not on this host."""
        try:
            fs_bytes = filesystem_size(device, fstype)
            return fs_bytes is not None and device_size(device) - fs_bytes > GROW_SLACK
        except OSError as exc:
            LOG.warning("cannot compare the sizes of %s and its file system: %s", device, exc)
            return False

    def short_of(self, device, fstype, size_bytes) -> bool:
        """True when the device, or its file system, is well short of `size_bytes`."""
        try:
            fs_bytes = filesystem_size(device, fstype)
            dev_bytes = device_size(device)
        except OSError as exc:
            LOG.warning("cannot read the sizes of %s and its file system: %s", device, exc)
            return False
        return min(dev_bytes, fs_bytes if fs_bytes is not None else dev_bytes) < size_bytes - GROW_SLACK

    def grow(self, device, mountpoint) -> None:
        """Grow the file system mounted at `mountpoint` (from `device`) to the whole device."""
        entry = self.mount_at(mountpoint)
        if entry is None:
            raise FilesystemError(f"{mountpoint} is not mounted; cannot grow its file system")
        if entry.fstype not in _GROW_ARGV:
            raise FilesystemError(f"cannot grow a {entry.fstype} file system; fuxi grows {', '.join(_GROW_ARGV)}")
        argv = _GROW_ARGV[entry.fstype](device, mountpoint)
        LOG.info("growing the %s file system at %s: %s", entry.fstype, mountpoint, " ".join(argv))
        try:
            self._executor.run(argv)
        except CommandError as exc:
            hint = ""
            if entry.fstype == "ext4" and "Permission denied" in str(exc):
                # The kernel's online resize (EXT4_IOC_RESIZE_FS) wants CAP_SYS_RESOURCE.
                hint = ("; an online ext4 resize needs CAP_SYS_RESOURCE, which fuxi-server lacks here: "
                        "the file system grows offline at the volume's next mount")
            raise FilesystemError(
                f"growing the mounted {entry.fstype} file system of {device} failed: {exc}{hint}") from exc

    def grow_unmounted(self, device, fstype) -> bool:
        """Grow an unmounted ext4 file system to its whole device (checked with
        `e2fsck -f -p` first, as resize2fs demands); True when done. xfs grows
        only while mounted: False, for `grow` after the mount."""
        if fstype != "ext4":
            return False
        LOG.info("growing the unmounted ext4 file system of %s", device)
        try:
            # 0: clean; 1: errors corrected (a preen fixes only what is safe to fix).
            self._executor.run(["e2fsck", "-f", "-p", device], ok_exit_codes=(0, 1))
            self._executor.run(["resize2fs", device])
        except CommandError as exc:
            raise FilesystemError(f"growing the ext4 file system of {device} failed: {exc}") from exc
        return True

    def freeze(self, mountpoint) -> None:
        """Flush the file system mounted at `mountpoint` and hold every write to it
        (FIFREEZE) until thaw(): what is on the device is then a clean file system."""
        try:
            self._executor.run(["fsfreeze", "--freeze", mountpoint])
        except CommandError as exc:
            raise FilesystemError(f"freezing the file system at {mountpoint} failed: {exc}") from exc

    def thaw(self, mountpoint) -> bool:
        """Let writes to `mountpoint` go on; False when it was not frozen (or is not
        mounted): the kernel answers EINVAL, and there is nothing to undo."""
        result = self._executor.run(["fsfreeze", "--unfreeze", mountpoint], ok_exit_codes=(0, 1))
        return result.exit_code == 0

    def move_mount(self, source, mountpoint) -> None:
        """Hand a mount (a pool volume's staged one) over to `mountpoint`.

        A bind mount, then the staging mount goes: unlike `mount --move`, this
        works under a shared parent mount (systemd makes / shared).
        """
        os.makedirs(mountpoint, exist_ok=True)
        try:
            self._executor.run(["mount", "--bind", source, mountpoint])
        except CommandError as exc:
            raise FilesystemError(f"bind-mounting {source} at {mountpoint} failed: {exc}") from exc
        self.unmount(source)
        try:
            os.rmdir(source)
        except OSError:
            pass

    def bind(self, source, target, read_only=False) -> None:
        """Bind-mount the directory `source` at `target` (made if missing), read-only if asked."""
        os.makedirs(target, exist_ok=True)
        try:
            self._executor.run(["mount", "--bind", source, target])
        except CommandError as exc:
            raise FilesystemError(f"bind-mounting {source} at {target} failed: {exc}") from exc
        if not read_only:
            return
        try:
            # A bind mount takes its flags from a remount of its own.
            self._executor.run(["mount", "-o", "remount,bind,ro", target])
        except CommandError as exc:
            self.unmount(target)
            raise FilesystemError(f"making the bind mount at {target} read-only failed: {exc}") from exc

    def unmount(self, mountpoint) -> None:
        if not self.is_mounted(mountpoint):
            return
        try:
            self._executor.run(["umount", mountpoint])
        except CommandError as exc:
            raise FilesystemError(
                f"unmounting {mountpoint} failed: {exc}; something on this host still uses it"
            ) from exc

    def mounts(self) -> list[MountEntry]:
        with open(self._mountinfo_path, encoding="utf-8") as f:
            return parse_mountinfo(f.read())

    def mount_at(self, mountpoint, mounts=None) -> MountEntry | None:
        """The last (visible) mount at mountpoint, or None; `mounts`: the mount
        table read once already (self.mounts()), for several lookups."""
        mountpoint = os.path.realpath(mountpoint)
        found = None
        for entry in self.mounts() if mounts is None else mounts:
            if entry.mountpoint == mountpoint:
                found = entry
        return found

    def mounted_from(self, device) -> list[str]:
        """Where a file system on block device `device` is mounted (a bind mount of
        it included): the mounts whose device number is the device's."""
        try:
            rdev = os.stat(device).st_rdev
        except OSError:
            return []
        number = f"{os.major(rdev)}:{os.minor(rdev)}"
        return [entry.mountpoint for entry in self.mounts() if entry.device == number]

    def is_mounted(self, mountpoint) -> bool:
        return self.mount_at(mountpoint) is not None
