"""Keep every pool at its level: refill in the background, fill and drain on
demand, and after a restart finish or undo whatever a crash left half-done."""

import dataclasses
import logging
import os
import threading

from storage_core.errors import InvalidInput, NotFound, StorageError
from storage_core.models import POOL_KEY
from storage_core.pool.claims import CLAIMED_FROM_KEY
from storage_core.pool.ledger import CLAIMED
from storage_core.pool.spec import FILLING, NAME_PREFIX, POOL_HOST_KEY, POOL_KEYS, POOL_STATE_KEY, READY
from storage_core.request_context import in_this_context

LOG = logging.getLogger(__name__)

# How long recovery waits for a volume a stopped fill left in Cinder's hands ("creating").
_SETTLE_TIMEOUT = 60.0


class PoolKeeper:
    def __init__(self, pools, filler, claims, ledger, backend, filesystems, host_name):
        self.pools = list(pools)
        self._filler = filler
        self._claims = claims
        self._ledger = ledger
        self._backend = backend
        self._fs = filesystems
        self._host = host_name
        self._stop = threading.Event()
        self._thread = None
        # One fill round at a time per process: the refill thread, `fuxi pool fill`
        # and drain share it, so levels read under it stay true for the round.
        self._filling = threading.Lock()
        # After a drain the refill rests, or it would undo the drain within seconds;
        # an on-demand fill (or a restart) wakes it.
        self._drained = threading.Event()

    # -- the background refill ------------------------------------------

    def start(self):
        if not self.pools or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="pool-keeper", daemon=True)
        self._thread.start()

    def stop(self, timeout=30.0):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        self._guard(self.recover, "recovering pools")
        interval = min(p.refill_interval for p in self.pools)
        while not self._stop.is_set():
            self._guard(self.refill, "refilling pools")
            self._stop.wait(interval)

    def _guard(self, fn, doing):
        # The keeper must outlive a cloud that is down for a while.
        try:
            fn()
        except StorageError as exc:
            LOG.warning("pool keeper: %s failed: %s", doing, exc)
        except Exception:
            LOG.exception("pool keeper: %s failed", doing)

    # -- levels -----------------------------------------------------------

    def levels(self, pool) -> dict:
        """Ready and filling volumes of a pool: in the cloud for shared pools
        (every host's), in this host's ledger for tier 3/4."""
        mine = self._ledger.all(pool.key)
        filling = sum(1 for pv in mine if pv.phase == FILLING)
        if pool.shared:
            tagged = self._backend.list_tagged(POOL_KEY, pool.key)
            ready = sum(1 for v in tagged if v.metadata.get(POOL_STATE_KEY) == READY)
            filling = max(filling, sum(1 for v in tagged if v.metadata.get(POOL_STATE_KEY) == FILLING))
        else:
            ready = sum(1 for pv in mine if pv.phase == READY)
        return {"ready": ready, "filling": filling}

    def volume_ids(self) -> set[str]:
        """Every volume this host's pool ledger holds (ready, filling or being claimed)."""
        return {pv.volume_id for pv in self._ledger.all()}

    def status(self) -> list[dict]:
        rows = []
        for pool in self.pools:
            rows.append({"pool": pool.name, "key": pool.key, "tier": pool.tier, "size_gb": pool.size_gb,
                         "fstype": pool.fstype, "min_ready": pool.min_ready, "max": pool.max_volumes,
                         "batch": pool.batch, **self.levels(pool)})
        return rows

    def refill(self):
        for pool in self.pools:
            if self._stop.is_set() or self._drained.is_set():
                return
            level = self.levels(pool)
            missing = pool.min_ready - level["ready"] - level["filling"]
            if missing > 0:
                self.fill(pool.name, min(missing, pool.batch))

    def fill(self, pool_name=None, count=None, progress=None) -> list[str]:
        """Add up to `count` volumes (default: up to the pool's max) to one or every pool,
        in rounds of up to `batch` volumes made side by side."""
        made = []
        pools = self._named(pool_name)
        self._drained.clear()
        for pool in pools:
            made_here = 0
            while not self._stop.is_set() and (count is None or made_here < count):
                # Levels are read under the lock and nobody else fills during the
                # round, so the refill thread and an on-demand fill never overshoot
                # max between them.
                with self._filling:
                    level = self.levels(pool)
                    wanted = min(pool.max_volumes - level["ready"] - level["filling"], pool.batch)
                    if count is not None:
                        wanted = min(wanted, count - made_here)
                    if wanted <= 0:
                        break
                    ids, errors = self._fill_round(pool, wanted)
                made.extend(ids)
                made_here += len(ids)
                if ids and progress:
                    progress(pool.name, made_here)
                if errors:
                    # The others of the round are ready and kept; the first failure is the answer.
                    raise errors[0]
        return made

    def _fill_round(self, pool, wanted) -> tuple[list[str], list[Exception]]:
        """Make `wanted` volumes of `pool` at once, one thread each; wait for all of them.

        Each fill_one undoes its own failure, so one volume failing leaves the
        others alone. The threads are daemons, like the keeper's own: a process
        exiting does not wait for them, and what a fill left half-made is on
        record (ledger, or the cloud's tags) for recover() to undo.
        """
        ids, errors = [], []

        def fill_one():
            try:
                ids.append(self._filler.fill_one(pool))
            except Exception as exc:  # noqa: BLE001 (raised by fill(), after the round)
                errors.append(exc)

        if wanted == 1:
            fill_one()  # no thread for a round of one
            return ids, errors
        # Each thread in the caller's context: a `fuxi pool fill`'s cloud requests carry its request id.
        threads = [threading.Thread(target=in_this_context(fill_one), name=f"pool-fill-{pool.name}-{i}",
                                    daemon=True)
                   for i in range(wanted)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for exc in errors[1:]:
            LOG.warning("pool %s: another volume of the round failed too: %s", pool.name, exc)
        return ids, errors

    def drain(self, pool_name=None) -> list[str]:
        """Delete this host's idle pool volumes: all tier 3/4 ones, and the tier 1/2 ones it made."""
        gone = []
        pools = self._named(pool_name)
        self._drained.set()
        # After the fill round under way, if any: its volumes are not pulled from under it.
        with self._filling:
            for pool in pools:
                for pv in self._ledger.all(pool.key):
                    if pv.phase in (READY, FILLING):
                        self._filler.discard(pv)
                        gone.append(pv.volume_id)
                if pool.shared:
                    for vol in self._backend.list_tagged(POOL_KEY, pool.key):
                        if vol.metadata.get(POOL_HOST_KEY) == self._host and vol.status == "available":
                            gone.append(self._delete_shared(vol))
        return [g for g in gone if g]

    def _delete_shared(self, vol):
        # Reserved first, so a host claiming it at this moment cannot get it half-deleted.
        try:
            reservation = self._backend.reserve(vol.id)
        except (StorageError, NotFound):
            return None
        self._backend.release(reservation)
        try:
            self._backend.delete(self._backend.get(vol.id))
        except NotFound:
            return None
        return vol.id

    def _named(self, pool_name):
        if pool_name is None:
            return self.pools
        found = [p for p in self.pools if p.name == pool_name]
        if not found:
            raise InvalidInput(f"no pool named {pool_name!r}; pools: {', '.join(p.name for p in self.pools) or 'none'}")
        return found

    # -- after a restart ----------------------------------------------------

    def recover(self):
        """Finish or undo what a crash left, logging each repair."""
        # Under the fill lock: a volume filling now is no leftover of a crash.
        with self._filling:
            self._recover()

    def _recover(self):
        for pv in self._ledger.all():
            if pv.phase == FILLING:
                LOG.warning("pool recovery: volume %s was being filled; undoing it", pv.volume_id)
                self._filler.discard(pv)
            elif pv.phase == CLAIMED:
                self._recover_claim(pv)
            elif pv.staging and not self._fs.is_mounted(pv.staging):
                LOG.warning("pool recovery: volume %s lost its staging mount (reboot?); discarding it",
                            pv.volume_id)
                self._filler.discard(dataclasses.replace(pv, staging=None))
            elif pv.device_path and not os.path.exists(pv.device_path):
                LOG.warning("pool recovery: volume %s lost its device; discarding it", pv.volume_id)
                self._filler.discard(pv)
        known = {pv.volume_id for pv in self._ledger.all()}
        for pool in self.pools:
            for vol in self._backend.list_tagged(POOL_KEY, pool.key):
                if not vol.name.startswith(NAME_PREFIX):
                    # Left by an older fuxi, which renamed and untagged in two calls.
                    LOG.warning("pool recovery: %s (%s) was claimed but kept its pool tags; untagging",
                                vol.name, vol.id)
                    self._backend.update_metadata(vol.id, {}, list(POOL_KEYS))
                elif (vol.metadata.get(POOL_HOST_KEY) == self._host and vol.id not in known
                      and (vol.metadata.get(POOL_STATE_KEY) == FILLING or not pool.shared)):
                    LOG.warning("pool recovery: %s was made here but is not on record; deleting it", vol.id)
                    if vol.status == "creating":
                        # A fill stopped while Cinder was making it: only a made volume goes.
                        try:
                            vol = self._backend.wait_for_status(vol.id, "available", _SETTLE_TIMEOUT)
                        except StorageError as exc:
                            LOG.warning("pool recovery: %s did not become available (%s); left for the "
                                        "next start", vol.id, exc)
                            continue
                    self._delete_shared(vol)

    def _recover_claim(self, pv):
        """A Create took this tier 3/4 volume and stopped before it was done."""
        try:
            vol = self._backend.get(pv.volume_id)
        except NotFound:
            self._ledger.forget(pv.volume_id)
            return
        if vol.name.startswith(NAME_PREFIX):
            # Not renamed: it is still a pool volume; back to ready. The claim's one
            # request renames and untags together, but Cinder writes the metadata
            # first: a failure of its own in between dropped the tags alone.
            LOG.warning("pool recovery: claim of %s stopped before renaming; back to the pool", pv.volume_id)
            if POOL_KEY not in vol.metadata or CLAIMED_FROM_KEY in vol.metadata:
                self._backend.update_metadata(pv.volume_id, {POOL_KEY: pv.pool_key, POOL_STATE_KEY: READY,
                                                             POOL_HOST_KEY: self._host},
                                              [CLAIMED_FROM_KEY] if CLAIMED_FROM_KEY in vol.metadata else [])
            self._ledger.save(dataclasses.replace(pv, phase=READY))
            return
        # Renamed (and untagged with it; a claim by an older fuxi untagged after
        # renaming): it is its user's volume now. Leave it detached, as after an
        # ordinary Create; its file system stays.
        LOG.warning("pool recovery: claim of %s as %s stopped half-way; finishing it", pv.volume_id, vol.name)
        if any(key in vol.metadata for key in POOL_KEYS):
            self._backend.update_metadata(pv.volume_id, {}, list(POOL_KEYS))
        self._filler.release_host(pv)
        self._ledger.forget(pv.volume_id)
