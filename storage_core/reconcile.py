"""Start-up reconciliation: after a crash, a kill -9 or a reboot, make this
host's journal, its mounts and the cloud agree again before the first request.

The rules, each repair logged:
1. After a reboot (the kernel's boot id changed) no mount survived, so no
   mount count is true any more: every count is dropped.
2. A volume stays on the host only when the journal says mounted, it is
   mounted, and a mount of it is counted: that is a live container's volume
   and nothing touches it — unless no mount namespace but the host's holds
   it and its counts are older than the grace (their callers died unseen). Anything else the journal holds is taken off the
   host (unmounted, detached, its access rule revoked): a half-done attach or
   mount, a mount nobody counted (the answer never reached the caller, or the
   last unmount stopped half-way), a volume a reboot unmounted. A volume a
   tier 3/4 pool handed to a Create that was never mounted goes too; its next
   mount attaches it like any other.
3. Mount counts of a volume the host no longer holds are dropped.
4. A cloud attachment this host made of a volume no journal record names (a
   crash between the cloud's answer and the journal write; a lost state dir)
   is released. Matched by volume, not attachment id: Nova before 2.89 names
   no attachment, and a volume has at most one attachment per host.

A repair that fails (the cloud is down) is logged and left: the journal keeps
the record, and the next mount, remove or start-up finishes it.
"""

import logging

from storage_core.errors import StorageError
from storage_core.state import Phase

LOG = logging.getLogger(__name__)

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_BOOT_FACT = "boot_id"


def read_boot_id(path=BOOT_ID_PATH) -> str:
    with open(path, encoding="ascii") as f:
        return f.read().strip()


class HostReconciler:
    def __init__(self, state, kinds, filesystems, lock_for, teardown, pool_volume_ids=(),
                 drop_stale_mounts=None, boot_id_path=BOOT_ID_PATH):
        """`kinds`: {backend name: kind}; `lock_for(name)`: the volume's lock;
        `teardown(host_volume)`: takes a volume off the host and forgets its record;
        `pool_volume_ids`: volumes the warm pool's ledger holds (its own recovery mends them);
        `drop_stale_mounts(name)`: drops counts whose callers are gone, returns what is left."""
        self._state = state
        self._kinds = kinds
        self._fs = filesystems
        self._lock_for = lock_for
        self._teardown = teardown
        self._pool_volume_ids = set(pool_volume_ids)
        self._drop_stale_mounts = drop_stale_mounts
        self._boot_id_path = boot_id_path
        self.repairs = []

    def _repair(self, message, *args):
        text = message % args
        LOG.warning("reconcile: %s", text)
        self.repairs.append(text)

    def run(self) -> list[str]:
        if self._rebooted():
            for name in sorted(self._state.mount_counts()):
                self._state.forget_mounts(name)
                self._repair("volume %s: the host rebooted; its mount counts are void", name)
        # Recorded now that the counts are dropped: a failed repair below must not
        # make the next start take the containers started since for a reboot's.
        self._state.set_host_fact(_BOOT_FACT, read_boot_id(self._boot_id_path))
        for hv in self._state.host_volumes():
            with self._lock_for(hv.name):
                self._mend(hv)
        held = {hv.name for hv in self._state.host_volumes()}
        for name in sorted(set(self._state.mount_counts()) - held):
            with self._lock_for(name):
                self._state.forget_mounts(name)
            self._repair("volume %s: dropped mount counts of a volume this host does not hold", name)
        self._release_leftovers()
        return self.repairs

    def _rebooted(self) -> bool:
        known = self._state.host_fact(_BOOT_FACT)
        return known is not None and known != read_boot_id(self._boot_id_path)

    def _mend(self, hv) -> None:
        counted = self._state.mount_count(hv.name)
        mounted = bool(hv.mountpoint) and self._fs.is_mounted(hv.mountpoint)
        if hv.phase == Phase.MOUNTED and mounted and counted:
            if self._drop_stale_mounts is None or self._drop_stale_mounts(hv.name):
                return
            counted = 0
            why = "no mount namespace but this host's holds it; its counted callers are gone"
        elif hv.phase != Phase.MOUNTED:
            why = f"its {'attach' if hv.phase == Phase.ATTACHING else 'mount'} stopped half-way ({hv.phase})"
        elif not mounted:
            why = "it is journaled as mounted but is not mounted"
        else:
            why = "it is mounted but no mount of it is counted"
        try:
            self._teardown(hv)
        except StorageError as exc:
            LOG.error("reconcile: volume %s: %s, and taking it off this host failed: %s; "
                      "the next mount or remove of it will try again", hv.name, why, exc)
            return
        if counted:
            self._state.forget_mounts(hv.name)
        self._repair("volume %s: %s; taken off this host", hv.name, why)

    def _release_leftovers(self) -> None:
        held = {hv.volume_id for hv in self._state.host_volumes()} | self._pool_volume_ids
        for kind in self._kinds.values():
            try:
                leftovers = kind.host_leftovers(held)
            except StorageError as exc:
                LOG.error("reconcile: could not list this host's %s attachments: %s", kind.name, exc)
                continue
            for volume_id, attachment_id, name in leftovers:
                with self._lock_for(name):
                    try:
                        kind.release_leftover(volume_id, attachment_id)
                    except StorageError as exc:
                        LOG.error("reconcile: volume %s: could not release attachment %s: %s",
                                  name, attachment_id, exc)
                        continue
                self._repair("volume %s: released attachment %s of a volume no journal record named",
                             name, attachment_id)
