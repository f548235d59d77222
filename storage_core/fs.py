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


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    source: str
    fstype: str


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
            self._executor.run(["mount", "-t", fstype, device, mountpoint])
        except CommandError as exc:
            raise FilesystemError(
                f"mounting {device} ({fstype}) at {mountpoint} failed: {exc}"
            ) from exc

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

    def mount_at(self, mountpoint) -> MountEntry | None:
        """The last (visible) mount at mountpoint, or None."""
        mountpoint = os.path.realpath(mountpoint)
        found = None
        for entry in self.mounts():
            if entry.mountpoint == mountpoint:
                found = entry
        return found

    def is_mounted(self, mountpoint) -> bool:
        return self.mount_at(mountpoint) is not None
