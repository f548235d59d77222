"""Who still uses a mounted file system, seen from the kernel, not from callers.

A caller that counted a mount may vanish without ever uncounting it: a
container that dies while its engine is down is never unmounted by the engine.
The kernel knows better: a container uses a volume through a bind mount in its
own mount namespace, so a file system that no mount namespace other than the
host's holds has no user left, whatever the counts say.

"The host's" may be more than one namespace: a process in a container of its
own (a Docker managed plugin) has its own, and the host's namespace, where its
ancestors run, sees a propagated copy of every mount it makes. Neither is a
container's, so the namespaces of this process and of its ancestors are never
taken for a user.
"""

import logging
import os

LOG = logging.getLogger(__name__)
# A bound on the walk up the process tree (a loop would be a broken /proc).
MAX_ANCESTORS = 256


def _device_of(path) -> str | None:
    """major:minor of the file system mounted at `path`, as mountinfo writes it."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    return f"{os.major(dev)}:{os.minor(dev)}"


def _namespace(proc_root, pid) -> str | None:
    """The process's mount namespace; None when it is gone. PermissionError when it
    cannot be read (no CAP_SYS_PTRACE, as in a container): never taken for "gone"."""
    try:
        return os.readlink(f"{proc_root}/{pid}/ns/mnt")
    except PermissionError:
        raise
    except OSError:
        return None


class MountUsers:
    def __init__(self, proc_root="/proc"):
        self._proc = proc_root

    def held_elsewhere(self, mountpoint) -> bool:
        """True when a mount namespace other than this process's and its
        ancestors' holds the file system mounted at `mountpoint`; also True when
        that cannot be told (the answer is used to drop counts, so doubt keeps them)."""
        device = _device_of(mountpoint)
        if device is None:
            return True
        try:
            own = _namespace(self._proc, "self")
            if own is None:
                return True
            ancestors = self._ancestors()
            seen = {own} | self._readable_namespaces(ancestors)
            for pid in os.listdir(self._proc):
                if not pid.isdigit() or pid in ancestors:
                    continue
                namespace = _namespace(self._proc, pid)
                if namespace is None or namespace in seen:
                    continue
                seen.add(namespace)
                if self._namespace_holds(pid, device):
                    return True
        except PermissionError as exc:
            # A namespace we may not read may hold it: keep the counts.
            LOG.warning("cannot tell who uses %s (%s); its mount counts are kept", mountpoint, exc)
            return True
        except OSError:
            return True
        return False

    def _ancestors(self) -> set[str]:
        """Pids of this process's parent, its parent's parent, ... up to PID 1."""
        ancestors, pid = set(), "self"
        while pid != "1" and len(ancestors) < MAX_ANCESTORS:
            pid = self._parent(pid)
            if pid is None or pid == "0" or pid in ancestors:
                break
            ancestors.add(pid)
        return ancestors

    def _parent(self, pid) -> str | None:
        try:
            with open(f"{self._proc}/{pid}/status", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("PPid:"):
                        return line.split()[1]
        except OSError:
            pass
        return None

    def _readable_namespaces(self, pids) -> set[str]:
        # An ancestor whose namespace cannot be read (PID 1 may refuse even root
        # in a container) is skipped: it is the host, never a container.
        namespaces = set()
        for pid in pids:
            try:
                namespaces.add(_namespace(self._proc, pid))
            except PermissionError:
                continue
        return namespaces - {None}

    def _namespace_holds(self, pid, device) -> bool:
        try:
            with open(f"{self._proc}/{pid}/mountinfo", encoding="utf-8", errors="replace") as f:
                # mountinfo: ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...
                return any(line.split(" ", 3)[2] == device for line in f)
        except OSError:
            return False  # the process went away: its namespace holds nothing now
