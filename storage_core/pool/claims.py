"""Claim a ready pool volume for a Create: rename it to the caller's name and
drop its pool tags (one Cinder request), so it is an ordinary user volume from
then on.

Tier 3/4 volumes are this host's alone, so taking one is a local affair; it
is then mounted (tier 3) or its staged mount moved (tier 4) to the volume's
mount point. Tier 1/2 volumes are shared by every host: a claim first takes
Cinder's reservation (an attachment without a connector, which Cinder grants
to one caller only), so two hosts never get the same volume.
"""

import logging
import random

from storage_core.errors import Conflict, NotFound, StorageError
from storage_core.models import POOL_KEY
from storage_core.pool.spec import POOL_KEYS, POOL_STATE_KEY, READY
from storage_core.state import HostVolume, Phase
from storage_core.timing import step

LOG = logging.getLogger(__name__)

# Shared-pool candidates tried per claim before giving up for the cold path.
_ATTEMPTS = 5

# On a claimed volume: the name of the pool it came from. Written in the claim's
# one request, in the cloud, so every host (and `fuxi volumes`) can tell a warm
# volume from a cold one. Not a pool tag: it stays for the volume's whole life.
CLAIMED_FROM_KEY = "fuxi_claimed_from"


class PoolClaims:
    def __init__(self, pools, backend, filesystems, ledger):
        self._pools = list(pools)
        self._backend = backend
        self._fs = filesystems
        self._ledger = ledger

    def pool_for(self, spec):
        return next((p for p in self._pools if p.serves(spec)), None)

    def claim(self, spec, mountpoint, journal):
        """A pool volume made `spec.name`, or None (no pool, or none ready: take the cold path).

        For tier 3/4 the volume is also mounted at `mountpoint`, and
        journal(HostVolume) records that before the pool forgets it.
        """
        pool = self.pool_for(spec)
        if pool is None:
            return None
        with step("pool-claim", spec.name):
            if pool.shared:
                return self._claim_shared(pool, spec)
            return self._claim_local(pool, spec, mountpoint, journal)

    def finish(self, volume, name, pool):
        """Make a pool volume `name`'s: rename it, drop its pool tags and record
        the pool it came from, in one request, so no crash of ours leaves it half
        claimed. Returns the volume as Cinder answered (its status as it was
        before the call)."""
        metadata = {k: v for k, v in volume.metadata.items() if k not in POOL_KEYS}
        metadata[CLAIMED_FROM_KEY] = pool.name
        try:
            return self._backend.rename_and_replace_metadata(volume.id, name, metadata)
        except StorageError:
            self._retag_if_half_done(volume)
            raise

    def _retag_if_half_done(self, volume):
        """Cinder writes the metadata before the name: a request that failed in
        between left a pool-named volume without pool tags, which would pass for
        a user's volume. Give it its tags back; the caller's error stands."""
        try:
            current = self._backend.get(volume.id)
            if current.name == volume.name and POOL_KEY not in current.metadata:
                LOG.warning("pool: claiming %s failed half-way in Cinder; putting its pool tags back", volume.id)
                self._backend.update_metadata(volume.id, {k: volume.metadata[k] for k in POOL_KEYS
                                                          if k in volume.metadata}, [CLAIMED_FROM_KEY])
        except StorageError:
            LOG.exception("pool: could not check volume %s after its claim failed", volume.id)

    def _claim_shared(self, pool, spec):
        ready = [v for v in self._backend.list_tagged(POOL_KEY, pool.key)
                 if v.metadata.get(POOL_STATE_KEY) == READY and v.status == "available"]
        random.shuffle(ready)  # hosts claiming at once mostly pick different volumes
        for vol in ready[:_ATTEMPTS]:
            try:
                reservation = self._backend.reserve(vol.id)
            except (Conflict, NotFound):
                continue  # another host was first
            try:
                # The list may be stale: another host may have claimed, renamed,
                # untagged and released it since. Only a volume still in the pool
                # under our reservation is ours to take.
                current = self._backend.get(vol.id)
                if current.metadata.get(POOL_KEY) != pool.key or current.name != vol.name:
                    continue
                self.finish(current, spec.name, pool)
            finally:
                self._backend.release(reservation)
            self._ledger.forget(vol.id)
            LOG.info("pool %s: volume %s claimed as %s", pool.name, vol.id, spec.name)
            return self._backend.get(vol.id)  # read once, after the release: its status is final
        return None

    def _claim_local(self, pool, spec, mountpoint, journal):
        pv = self._ledger.take_ready(pool.key)
        if pv is None:
            return None
        try:
            vol = self.finish(self._backend.get(pv.volume_id), spec.name, pool)
        except StorageError:
            LOG.exception("pool %s: claiming %s failed; recovery will sort it out", pool.name, pv.volume_id)
            raise
        if pv.staging:
            self._fs.move_mount(pv.staging, mountpoint)
        else:
            self._fs.mount(pv.device_path, mountpoint, pool.fstype)
        journal(HostVolume(
            name=spec.name, volume_id=vol.id, phase=Phase.MOUNTED, attachment_id=pv.attachment_id,
            connection_info=pv.connection_info, device_path=pv.device_path, mountpoint=mountpoint,
            backend="cinder",
        ))
        self._ledger.forget(pv.volume_id)
        LOG.info("pool %s: volume %s claimed as %s, mounted at %s", pool.name, vol.id, spec.name, mountpoint)
        return vol
