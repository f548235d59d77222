"""A Cinder volume driver for tests: sparse files bound to loop devices.

Loaded by cinder-volume with
``volume_driver = realcloud_cinder_driver.LoopFileDriver``
(realcloud.py copies this module into the cinder virtualenv).

* a volume is a sparse file ``<realcloud_volumes_dir>/volume-<id>``, a
  snapshot one more, ``snapshot-<id>``, in the same directory;
* ``initialize_connection`` binds the file to a loop device (or reuses the
  one already bound) and answers ``driver_volume_type: local`` with the
  device path, which os-brick's LOCAL connector uses as is;
* the loop device is released when the last connection goes away, and when
  the volume is deleted;
* snapshots, clones and volumes made from snapshots are sparse copies of the
  source file: only its data extents are copied (SEEK_DATA / SEEK_HOLE), and
  the copy is complete when the call returns;
* a snapshot can be connected too (read-only loop device), for cinder-backup
  when ``backup_use_temp_snapshot`` is set.

Who connects to a volume, and how the loop device is shared:

* attachments (fuxi, Nova): ``initialize_connection`` from
  attachment_update; on attachment delete ``terminate_connection`` (force
  False) while the attachment being deleted is still recorded as live, then
  ``remove_export`` only if we answered "not shared";
* everything else (cinder-backup backing up or restoring, the
  os-terminate_connection action, the volume manager's own copies): a
  connection with no attachment record; cinder-backup always terminates with
  force=True and then calls ``remove_export``.

So ``terminate_connection`` discounts one live attachment (the one being
deleted, found by its connector) only when it is not forced, and releases
the device only when no other live attachment remains; ``remove_export``
releases it only when no live attachment remains at all.  A loop device
that a live attachment uses is never released by a connection without an
attachment record.

cinder-volume runs as root on the test machine, so losetup is called
directly (argument lists, no shell, no rootwrap).
"""

import errno
import os
import subprocess
import threading

from oslo_config import cfg
from oslo_log import log as logging

from cinder import exception
from cinder.volume import driver

try:  # a native thread for file copies, so the green threads keep running
    from eventlet import tpool
except ImportError:  # pragma: no cover - cinder always has eventlet
    tpool = None

LOG = logging.getLogger(__name__)

GIB = 1024 ** 3

loop_file_opts = [
    cfg.StrOpt('realcloud_volumes_dir',
               default='/var/lib/cinder/realcloud-volumes',
               help='Directory holding one sparse file per volume.'),
    cfg.IntOpt('realcloud_capacity_gb',
               default=0,
               help='Capacity to report; 0 means the size of the file '
                    'system holding realcloud_volumes_dir.'),
]

# One lock for every losetup decision in this process (cinder-volume runs
# one process per backend; eventlet turns this into a green lock).
_LOCK = threading.Lock()

# Attachments that hold a connection to the backend.
_LIVE_ATTACH_STATES = ('attaching', 'attached')


def _run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise exception.VolumeBackendAPIException(
            data='%s failed (%d): %s' % (' '.join(argv), proc.returncode,
                                         proc.stderr.strip()))
    return proc.stdout


def loops_of(path):
    """Loop devices bound to ``path`` (``losetup -j``)."""
    if not os.path.exists(path):
        return []
    out = _run(['losetup', '-j', path])
    devices = []
    for line in out.splitlines():
        # "/dev/loop3: [2049]:1234 (/path/to/file)"
        dev = line.split(':', 1)[0].strip()
        if dev.startswith('/dev/'):
            devices.append(dev)
    return devices


def release_loops(path):
    for dev in loops_of(path):
        LOG.info('realcloud: detaching %s from %s', dev, path)
        _run(['losetup', '-d', dev])


def _release_and_remove(path):
    """Let go of any loop device bound to a volume's or snapshot's file, then
    remove the file (gone already is fine)."""
    with _LOCK:
        release_loops(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def bind_loop(path, read_only=False):
    """The loop device bound to path, binding one if there is none."""
    devices = loops_of(path)
    if devices:
        return devices[0]
    argv = ['losetup', '-f', '--show'] + (['-r'] if read_only else []) + [path]
    return _run(argv).strip()


def sparse_copy(src, dst, size=0):
    """Copy src into a new file dst, data extents only; dst ends up at least
    ``size`` bytes long (longer than src means a hole at the end).

    Data still in the page cache (a loop device's writes) is read as well:
    SEEK_DATA and copy_file_range go through it.  Returns the bytes copied.
    """
    copied = 0
    fd_in = os.open(src, os.O_RDONLY)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            length = os.fstat(fd_in).st_size
            os.ftruncate(fd_out, length)
            offset = 0
            while offset < length:
                try:
                    start = os.lseek(fd_in, offset, os.SEEK_DATA)
                except OSError as e:
                    if e.errno == errno.ENXIO:  # nothing but a hole left
                        break
                    raise
                end = os.lseek(fd_in, start, os.SEEK_HOLE)
                pos = start
                while pos < end:
                    n = os.copy_file_range(fd_in, fd_out, end - pos, pos, pos)
                    if n == 0:  # the source shrank under us
                        end = pos
                        break
                    pos += n
                copied += end - start
                offset = end
            if size > length:
                os.ftruncate(fd_out, size)
        except BaseException:
            os.close(fd_out)
            try:
                os.unlink(dst)
            except FileNotFoundError:
                pass
            raise
        os.close(fd_out)
    finally:
        os.close(fd_in)
    return copied


def _in_native_thread(fn, *args):
    if tpool is not None:
        return tpool.execute(fn, *args)
    return fn(*args)


class LoopFileDriver(driver.VolumeDriver):
    """Sparse files under a directory, handed out as local loop devices."""

    VERSION = '1.1.0'
    # No third-party CI to report to: this driver exists for tests only.
    CI_WIKI_NAME = 'none'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(loop_file_opts)
        self.backend_name = (
            self.configuration.safe_get('volume_backend_name') or 'local')
        self.volumes_dir = self.configuration.safe_get('realcloud_volumes_dir')

    # -- set-up ---------------------------------------------------------

    def do_setup(self, context):
        os.makedirs(self.volumes_dir, exist_ok=True)

    def check_for_setup_error(self):
        if not os.path.isdir(self.volumes_dir):
            raise exception.VolumeBackendAPIException(
                data='volumes dir %s is missing' % self.volumes_dir)
        _run(['losetup', '--version'])

    # -- helpers --------------------------------------------------------

    def local_path(self, volume):
        return os.path.join(self.volumes_dir, volume.name)

    def snapshot_path(self, snapshot):
        return os.path.join(self.volumes_dir, snapshot.name)

    def _live_attachments(self, volume):
        try:
            attachments = volume.volume_attachment or []
        except Exception:  # an unloaded relationship; assume none
            attachments = []
        return [a for a in attachments
                if a.attach_status in _LIVE_ATTACH_STATES and a.connector]

    def _copy(self, src, dst, size_gb, what):
        if not os.path.exists(src):
            raise exception.VolumeBackendAPIException(
                data='%s: source file %s is missing' % (what, src))
        try:
            copied = _in_native_thread(sparse_copy, src, dst, size_gb * GIB)
        except OSError as e:
            raise exception.VolumeBackendAPIException(
                data='%s: copying %s to %s failed: %s' % (what, src, dst, e))
        LOG.info('realcloud: %s: %s -> %s (%d bytes of data, %d GiB)',
                 what, src, dst, copied, size_gb)

    # -- volume lifecycle -----------------------------------------------

    def create_volume(self, volume):
        path = self.local_path(volume)
        with open(path, 'wb') as f:
            f.truncate(volume.size * GIB)
        LOG.info('realcloud: created %s (%d GiB)', path, volume.size)
        return {}

    def delete_volume(self, volume):
        _release_and_remove(self.local_path(volume))

    def extend_volume(self, volume, new_size):
        # The driver's part of an extend (offline, or online at 3.42): the
        # backing file grows. A loop device bound to it keeps its old size,
        # as an iSCSI session does, until the host that attached it rescans
        # (fuxi runs `losetup -c` where os-brick's rescan would run).
        with _LOCK:
            os.truncate(self.local_path(volume), new_size * GIB)
        LOG.info('realcloud: extended %s to %d GiB', self.local_path(volume), new_size)

    def create_cloned_volume(self, volume, src_vref):
        # The source may be in-use: its loop device's writes reach the
        # backing file through the page cache, which the copy reads.
        self._copy(self.local_path(src_vref), self.local_path(volume),
                   volume.size, 'clone of volume %s' % src_vref.id)
        return {}

    # -- snapshots ------------------------------------------------------

    def create_snapshot(self, snapshot):
        # Synchronous: the volume manager marks the snapshot available when
        # this returns, and a client that froze the file system for the
        # snapshot thaws it then.
        self._copy(self.local_path(snapshot.volume),
                   self.snapshot_path(snapshot), 0,
                   'snapshot %s of volume %s' % (snapshot.id,
                                                 snapshot.volume_id))
        return {}

    def delete_snapshot(self, snapshot):
        path = self.snapshot_path(snapshot)
        _release_and_remove(path)
        LOG.info('realcloud: deleted snapshot %s', path)

    def create_volume_from_snapshot(self, volume, snapshot):
        self._copy(self.snapshot_path(snapshot), self.local_path(volume),
                   volume.size, 'volume from snapshot %s' % snapshot.id)
        return {}

    def revert_to_snapshot(self, context, volume, snapshot):
        # Cinder reverts only an available volume of the snapshot's size:
        # no loop device is bound.  A sparse copy of the snapshot replaces
        # the volume's file (checked under the lock: still not connected).
        path = self.local_path(volume)
        tmp = path + '.revert'
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        self._copy(self.snapshot_path(snapshot), tmp, volume.size,
                   'revert of volume %s to snapshot %s'
                   % (volume.id, snapshot.id))
        with _LOCK:
            if loops_of(path):
                os.unlink(tmp)
                raise exception.VolumeBackendAPIException(
                    data='volume %s is connected: not reverted' % volume.id)
            os.replace(tmp, path)

    # -- exports and connections ----------------------------------------

    def ensure_export(self, context, volume):
        return None

    def create_export(self, context, volume, connector):
        return None

    def remove_export(self, context, volume):
        # After an attachment delete this comes only when
        # terminate_connection answered "not shared" and has released the
        # device already.  Other callers (cinder-backup) have no attachment
        # record: any live attachment keeps the device.
        with _LOCK:
            if not self._live_attachments(volume):
                release_loops(self.local_path(volume))

    def initialize_connection(self, volume, connector):
        path = self.local_path(volume)
        if not os.path.exists(path):
            raise exception.VolumeBackendAPIException(
                data='backing file %s is missing' % path)
        with _LOCK:
            device = bind_loop(path)
        LOG.info('realcloud: %s is %s', path, device)
        return {
            'driver_volume_type': 'local',
            'data': {'device_path': device},
        }

    def terminate_connection(self, volume, connector, **kwargs):
        """Release the loop device unless another attachment still uses it.

        Returns True when the connection is shared (kept), as the volume
        manager expects; it then skips remove_export.
        """
        force = kwargs.get('force', False)
        with _LOCK:
            others = self._live_attachments(volume)
            # An attachment delete (never forced) still counts the
            # attachment being deleted: it carries this connector.  A
            # forced call (cinder-backup) or one with a connector no live
            # attachment has, comes without an attachment record.
            if not force and connector:
                for i, att in enumerate(others):
                    if att.connector == connector:
                        del others[i]
                        break
            if others:
                LOG.info('realcloud: %s stays connected: %d other live '
                         'attachment(s)', volume.id, len(others))
                return True
            release_loops(self.local_path(volume))
            return False

    def create_export_snapshot(self, context, snapshot, connector):
        return None

    def remove_export_snapshot(self, context, snapshot):
        with _LOCK:
            release_loops(self.snapshot_path(snapshot))

    def initialize_connection_snapshot(self, snapshot, connector, **kwargs):
        # Only cinder-backup connects to a snapshot (backup_use_temp_snapshot);
        # a snapshot has no attachments, and cinder-backup backs up one
        # snapshot at a time (the snapshot is "backing-up" meanwhile).
        path = self.snapshot_path(snapshot)
        if not os.path.exists(path):
            raise exception.VolumeBackendAPIException(
                data='snapshot file %s is missing' % path)
        with _LOCK:
            device = bind_loop(path, read_only=True)
        LOG.info('realcloud: %s is %s (read-only)', path, device)
        return {
            'driver_volume_type': 'local',
            'data': {'device_path': device},
        }

    def terminate_connection_snapshot(self, snapshot, connector, **kwargs):
        with _LOCK:
            release_loops(self.snapshot_path(snapshot))

    # -- stats ----------------------------------------------------------

    def _update_volume_stats(self):
        capacity = self.configuration.safe_get('realcloud_capacity_gb') or 0
        if capacity:
            total = float(capacity)
            free = float(capacity)
        else:
            st = os.statvfs(self.volumes_dir)
            total = round(st.f_blocks * st.f_frsize / GIB, 2)
            free = round(st.f_bavail * st.f_frsize / GIB, 2)
        provisioned = 0
        for name in os.listdir(self.volumes_dir):
            try:
                provisioned += os.stat(
                    os.path.join(self.volumes_dir, name)).st_size
            except OSError:
                pass
        self._stats = {
            'volume_backend_name': self.backend_name,
            'vendor_name': 'fuxi realcloud',
            'driver_version': self.VERSION,
            'storage_protocol': 'local',
            'pools': [{
                'pool_name': self.backend_name,
                'total_capacity_gb': total,
                'free_capacity_gb': free,
                'provisioned_capacity_gb': round(provisioned / GIB, 2),
                'reserved_percentage': 0,
                'max_over_subscription_ratio': 20.0,
                'thin_provisioning_support': True,
                'thick_provisioning_support': False,
                'multiattach': True,
                'online_extend_support': True,
                'QoS_support': False,
            }],
        }
