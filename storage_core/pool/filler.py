"""Make pool volumes (create, and by tier format, attach, mount) and unmake them."""

import dataclasses
import logging
import os
import uuid

from storage_core.errors import NotFound, StorageError
from storage_core.models import POOL_KEY, VolumeSpec
from storage_core.pool.ledger import PoolVolume
from storage_core.pool.spec import FILLING, NAME_PREFIX, POOL_HOST_KEY, POOL_STATE_KEY, READY, PoolSpec
from storage_core.timing import step

LOG = logging.getLogger(__name__)


class PoolFiller:
    def __init__(self, backend, attacher, filesystems, ledger, staging_root, host_name):
        self._backend = backend
        self._attacher = attacher
        self._fs = filesystems
        self._ledger = ledger
        self._staging_root = staging_root
        self._host = host_name

    def fill_one(self, pool: PoolSpec) -> str:
        """Make one ready volume for `pool`; return its id. A failure undoes what was made."""
        spec = VolumeSpec(
            name=NAME_PREFIX + uuid.uuid4().hex[:12], size_gb=pool.size_gb, fstype=pool.fstype,
            volume_type=pool.volume_type, availability_zone=pool.availability_zone,
            extra_metadata={POOL_KEY: pool.key, POOL_STATE_KEY: FILLING, POOL_HOST_KEY: self._host},
        )
        with step("pool-create", spec.name):
            vol = self._backend.create(spec)
        pv = PoolVolume(vol.id, pool.key, pool.tier, FILLING)
        self._ledger.save(pv)
        try:
            if pool.tier >= 2:
                pv = self._format(vol, pool, pv)
            self._backend.update_metadata(vol.id, {POOL_STATE_KEY: READY}, [])
        except StorageError:
            LOG.exception("pool %s: filling volume %s failed; undoing it", pool.name, vol.id)
            self.discard(self._current(pv))
            raise
        if pool.shared:
            self._ledger.forget(vol.id)  # ready and attached nowhere: its cloud tags are the record
        else:
            self._ledger.save(dataclasses.replace(self._current(pv), phase=READY))
        LOG.info("pool %s: volume %s ready (tier %d)", pool.name, vol.id, pool.tier)
        return vol.id

    def _current(self, pv):
        return next((p for p in self._ledger.all(pv.pool_key) if p.volume_id == pv.volume_id), pv)

    def _format(self, vol, pool, pv) -> PoolVolume:
        def journal(pending):
            self._ledger.save(dataclasses.replace(
                pv, attachment_id=pending.attachment_id, connection_info=dict(pending.connection_info)))

        with step("pool-attach", vol.name):
            attachment = self._attacher.attach(vol, journal)
        pv = dataclasses.replace(pv, attachment_id=attachment.attachment_id,
                                 connection_info=dict(attachment.connection_info),
                                 device_path=attachment.device_path)
        self._ledger.save(pv)
        with step("pool-mkfs", vol.name):
            self._fs.ensure_filesystem(attachment.device_path, pool.fstype)
        if pool.tier == 2:
            # Formatted, then handed back: tier 2 volumes are attached nowhere.
            self._attacher.detach(attachment)
            pv = dataclasses.replace(pv, attachment_id=None, connection_info=None, device_path=None)
        elif pool.tier == 4:
            staging = os.path.join(self._staging_root, vol.id)
            pv = dataclasses.replace(pv, staging=staging)
            self._ledger.save(pv)
            with step("pool-mount", vol.name):
                self._fs.mount(attachment.device_path, staging, pool.fstype)
        self._ledger.save(pv)
        return pv

    def release_host(self, pv: PoolVolume) -> None:
        """Unmount and detach what this host holds of a pool volume; the volume stays."""
        if pv.staging:
            self._fs.unmount(pv.staging)
            try:
                os.rmdir(pv.staging)
            except OSError:
                pass
        if pv.host_attachment is not None:
            self._attacher.detach(pv.host_attachment)

    def discard(self, pv: PoolVolume) -> None:
        """Unmount, detach and delete a pool volume this host holds, then forget it."""
        self.release_host(pv)
        try:
            self._backend.delete(self._backend.get(pv.volume_id))
        except NotFound:
            pass
        self._ledger.forget(pv.volume_id)
        LOG.info("pool volume %s discarded", pv.volume_id)
