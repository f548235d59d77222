"""Who still uses a mounted file system, seen from the kernel, not from callers.

A caller that counted a mount may vanish without ever uncounting it: a
container that dies while its engine is down is never unmounted by the engine.
The kernel knows better: a container uses a volume through a bind mount in its
own mount namespace, so a file system that no mount namespace other than the
host's holds has no user left, whatever the counts say.

What is not a user:
- "The host's" namespaces: this process's, and those of its ancestors. A
  process in a container of its own (a Docker managed plugin) has its own, and
  the host's, where its ancestors run, sees a propagated copy of every mount it
  makes.
- A copy that mount propagation put into a namespace that is a slave of the
  host's (a systemd service with private mounts, `ip netns exec`). Such a copy
  sits at the host's mount point and carries the host mount's peer group in
  mountinfo (`master:N`). Both must hold: Docker's mount of a managed plugin's
  volume into a container also carries `master:N`, but at the container's path.
  (Docker's mount of a legacy plugin's volume is private: no peer group at all.)
"""

import logging
import os
from dataclasses import dataclass

LOG = logging.getLogger(__name__)
# A bound on the walk up the process tree (a loop would be a broken /proc).
MAX_ANCESTORS = 256


@dataclass(frozen=True)
class _Mount:
    """One mountinfo line of the device being asked about."""
    point: str
    shared: frozenset  # peer groups it belongs to (shared:N)
    receives_from: frozenset  # peer groups it is a copy of (shared:N, master:N, propagate_from:N)


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


def _mounts_of(proc_root, pid, device) -> list[_Mount]:
    """The namespace's mounts of `device`; [] when the process went away.

    mountinfo: ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL ...] - FSTYPE ...
    """
    try:
        with open(f"{proc_root}/{pid}/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except PermissionError:
        raise
    except OSError:
        return []
    mounts = []
    for line in lines:
        fields = line.split()
        if len(fields) < 7 or fields[2] != device:
            continue
        shared, receives_from = set(), set()
        for optional in fields[6:]:
            if optional == "-":
                break
            tag, _, group = optional.partition(":")
            if tag == "shared":
                shared.add(group)
            if tag in ("shared", "master", "propagate_from"):
                receives_from.add(group)
        mounts.append(_Mount(fields[4], frozenset(shared), frozenset(receives_from)))
    return mounts


class MountUsers:
    def __init__(self, proc_root="/proc"):
        self._proc = proc_root

    def held_elsewhere(self, mountpoint) -> bool:
        """True when a mount namespace other than the host's holds the file system
        mounted at `mountpoint` other than as a propagated copy; also True when
        that cannot be told (the answer is used to drop counts, so doubt keeps them)."""
        device = _device_of(mountpoint)
        if device is None:
            return True
        try:
            own = _namespace(self._proc, "self")
            if own is None:
                return True
            ancestors = self._ancestors()
            host_namespaces = {own} | self._readable_namespaces(ancestors)
            host_mounts = _mounts_of(self._proc, "self", device) + self._readable_mounts(ancestors, device)
            host_points = {m.point for m in host_mounts}
            host_groups = set().union(*(m.shared for m in host_mounts))
            seen = set(host_namespaces)
            for pid in os.listdir(self._proc):
                if not pid.isdigit() or pid in ancestors:
                    continue
                namespace = _namespace(self._proc, pid)
                if namespace is None or namespace in seen:
                    continue
                seen.add(namespace)
                if any(not (m.point in host_points and m.receives_from & host_groups)
                       for m in _mounts_of(self._proc, pid, device)):
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

    # An ancestor that cannot be read (PID 1 may refuse even root in a container)
    # is skipped: it is the host, never a container.

    def _readable_namespaces(self, pids) -> set[str]:
        namespaces = set()
        for pid in pids:
            try:
                namespaces.add(_namespace(self._proc, pid))
            except PermissionError:
                continue
        return namespaces - {None}

    def _readable_mounts(self, pids, device) -> list[_Mount]:
        mounts = []
        for pid in pids:
            try:
                mounts += _mounts_of(self._proc, pid, device)
            except PermissionError:
                continue
        return mounts
