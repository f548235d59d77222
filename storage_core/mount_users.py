"""Who still uses a mounted file system, seen from the kernel, not from callers.

A caller that counted a mount may vanish without ever uncounting it: a
container that dies while its engine is down is never unmounted by the engine.
The kernel knows better: a container uses a volume through a bind mount in its
own mount namespace, so a file system that no mount namespace other than the
host's holds has no user left, whatever the counts say.
"""

import logging
import os

LOG = logging.getLogger(__name__)


def _device_of(path) -> str | None:
    """major:minor of the file system mounted at `path`, as mountinfo writes it."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    return f"{os.major(dev)}:{os.minor(dev)}"


def _namespace(proc_root, pid) -> str | None:
    try:
        return os.readlink(f"{proc_root}/{pid}/ns/mnt")
    except OSError:
        return None


class MountUsers:
    def __init__(self, proc_root="/proc"):
        self._proc = proc_root

    def held_elsewhere(self, mountpoint) -> bool:
        """True when a mount namespace other than this process's holds the file
        system mounted at `mountpoint`; also True when that cannot be told (the
        answer is used to drop counts, so doubt keeps them)."""
        device = _device_of(mountpoint)
        if device is None:
            return True
        own = _namespace(self._proc, "self")
        if own is None:
            return True
        seen = {own}
        try:
            pids = [p for p in os.listdir(self._proc) if p.isdigit()]
        except OSError:
            return True
        for pid in pids:
            namespace = _namespace(self._proc, pid)
            if namespace is None or namespace in seen:
                continue
            seen.add(namespace)
            if self._namespace_holds(pid, device):
                return True
        return False

    def _namespace_holds(self, pid, device) -> bool:
        try:
            with open(f"{self._proc}/{pid}/mountinfo", encoding="utf-8", errors="replace") as f:
                # mountinfo: ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...
                return any(line.split(" ", 3)[2] == device for line in f)
        except OSError:
            return False  # the process went away: its namespace holds nothing now
