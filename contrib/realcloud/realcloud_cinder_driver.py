"""A Cinder volume driver for tests: sparse files bound to loop devices.

Loaded by cinder-volume with
``volume_driver = realcloud_cinder_driver.LoopFileDriver``
(realcloud.py copies this module into the cinder virtualenv).

* a volume is a sparse file ``<realcloud_volumes_dir>/volume-<id>``;
* ``initialize_connection`` binds the file to a loop device (or reuses the
  one already bound) and answers ``driver_volume_type: local`` with the
  device path, which os-brick's LOCAL connector uses as is;
* the loop device is released when the last attachment goes away, and when
  the volume is deleted.

cinder-volume runs as root on the test machine, so losetup is called
directly (argument lists, no shell, no rootwrap).
"""

import os
import subprocess
import threading

from oslo_config import cfg
from oslo_log import log as logging

from cinder import exception
from cinder.volume import driver

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


class LoopFileDriver(driver.VolumeDriver):
    """Sparse files under a directory, handed out as local loop devices."""

    VERSION = '1.0.0'
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

    def _live_attachments(self, volume):
        try:
            attachments = volume.volume_attachment or []
        except Exception:  # an unloaded relationship; assume none
            attachments = []
        return [a for a in attachments
                if a.attach_status in _LIVE_ATTACH_STATES and a.connector]

    # -- volume lifecycle -----------------------------------------------

    def create_volume(self, volume):
        path = self.local_path(volume)
        with open(path, 'wb') as f:
            f.truncate(volume.size * GIB)
        LOG.info('realcloud: created %s (%d GiB)', path, volume.size)
        return {}

    def delete_volume(self, volume):
        path = self.local_path(volume)
        with _LOCK:
            release_loops(path)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def extend_volume(self, volume, new_size):
        # The driver's part of an extend (offline, or online at 3.42): the
        # backing file grows. A loop device bound to it keeps its old size,
        # as an iSCSI session does, until the host that attached it rescans
        # (fuxi runs `losetup -c` where os-brick's rescan would run).
        with _LOCK:
            os.truncate(self.local_path(volume), new_size * GIB)
        LOG.info('realcloud: extended %s to %d GiB', self.local_path(volume), new_size)

    # -- exports and connections ----------------------------------------

    def ensure_export(self, context, volume):
        return None

    def create_export(self, context, volume, connector):
        return None

    def remove_export(self, context, volume):
        with _LOCK:
            if len(self._live_attachments(volume)) <= 1:
                release_loops(self.local_path(volume))

    def initialize_connection(self, volume, connector):
        path = self.local_path(volume)
        if not os.path.exists(path):
            raise exception.VolumeBackendAPIException(
                data='backing file %s is missing' % path)
        with _LOCK:
            devices = loops_of(path)
            if devices:
                device = devices[0]
            else:
                device = _run(['losetup', '-f', '--show', path]).strip()
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
        with _LOCK:
            # The attachment being deleted is still counted here.
            if len(self._live_attachments(volume)) > 1:
                return True
            release_loops(self.local_path(volume))
            return False

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
