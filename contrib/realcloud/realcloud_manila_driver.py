"""A Manila share driver for tests: shares are directories on real file servers.

Loaded by manila-share with
``share_driver = realcloud_manila_driver.DirectoryShareDriver``
(realcloud.py copies this module into the manila virtualenv).
``driver_handles_share_servers = False``: the file servers exist already.

Shares get the layout devcloud's Manila hands out (``ShareBackends`` in
storage_core/devcloud/shares.py), so fuxi mounts them the same way on both:

* GLUSTERFS: the directory ``share-<share id>`` under a host-side mount of
  the whole GlusterFS volume, exported as ``SERVER:/VOLUME/share-<id>``
  (a subdirectory mount); ``cert`` rules, read-write only.
* CEPHFS: the directory ``volumes/_nogroup/<share id>`` under a host-side
  mount of the CephFS, exported as ``MON:/volumes/_nogroup/<id>``;
  ``cephx`` rules, each answered with an access key shaped like a Ceph
  secret; the cephx id manila-share itself would use is refused.
* NFS: the export ``NFS_SERVER:/exports/<share id>``, well-formed only
  (nothing on these machines can mount NFS); ``ip`` rules.

A protocol whose mount is not configured (or not mounted) fails share
creation, which leaves the share in ``error`` as any driver failure does. A
rule the protocol cannot apply ends in ``error`` on its own, as Manila's
CephFS and GlusterFS drivers report it, without touching the other rules.

The directories are named after the share's id, not the share *instance* id
Manila's own drivers use, because that is the id fuxi and devcloud know.
"""

import base64
import hashlib
import json
import os
import secrets
import shutil
import struct
import time

from oslo_config import cfg
from oslo_log import log as logging

from manila import exception
from manila.share import driver

LOG = logging.getLogger(__name__)

directory_share_opts = [
    cfg.StrOpt('realcloud_nfs_server', default='127.0.0.1',
               help='Host named in the (unmountable) NFS export paths.'),
    cfg.StrOpt('realcloud_glusterfs_server', default='',
               help='GlusterFS server address used in export paths.'),
    cfg.StrOpt('realcloud_glusterfs_volume', default='',
               help='GlusterFS volume that holds the shares.'),
    cfg.StrOpt('realcloud_glusterfs_mount', default='',
               help='Where the whole GlusterFS volume is mounted on this '
                    'host; empty: GLUSTERFS shares cannot be created.'),
    cfg.StrOpt('realcloud_cephfs_mon', default='',
               help='Ceph monitor HOST:PORT used in export paths.'),
    cfg.StrOpt('realcloud_cephfs_mount', default='',
               help='Where the root of the CephFS is mounted on this host; '
                    'empty: CEPHFS shares cannot be created.'),
    cfg.StrOpt('realcloud_cephfs_manila_id', default='manila',
               help='The cephx id manila-share uses for itself; rules for '
                    'it are refused, as the CephFS driver refuses them.'),
    cfg.StrOpt('realcloud_pool_name', default='shares',
               help='Name of the one pool this backend reports.'),
]

SERVED_PROTOCOLS = ('NFS', 'CEPHFS', 'GLUSTERFS')
ACCESS_TYPES = {'NFS': ('ip',), 'CEPHFS': ('cephx',), 'GLUSTERFS': ('cert',)}
POOL_CAPACITY_GB = 1000
# What a protocol with a real file server behind it needs configured.
REQUIRED_OPTIONS = {
    'GLUSTERFS': ('glusterfs_mount', 'glusterfs_server', 'glusterfs_volume'),
    'CEPHFS': ('cephfs_mount', 'cephfs_mon'),
}


def cephx_key():
    """A secret shaped like ``ceph auth get-key`` prints (``AQ...==``).

    The cluster the tests run has ``auth none``, so the key only has to
    look right: a Ceph secret is a little-endian header (type 1 = AES,
    creation seconds and nanoseconds, length 16) followed by 16 random
    bytes, base64-encoded.
    """
    now = time.time()
    header = struct.pack('<HIIH', 1, int(now), int((now % 1) * 1e9), 16)
    return base64.b64encode(header + secrets.token_bytes(16)).decode('ascii')


class DirectoryShareDriver(driver.ShareDriver):
    """Shares as directories on mounted GlusterFS/CephFS, and fake NFS exports."""

    def __init__(self, *args, **kwargs):
        super().__init__(False, *args, config_opts=[directory_share_opts],
                         **kwargs)
        self.backend_name = (
            self.configuration.safe_get('share_backend_name') or
            'realcloud')

    # -- configuration ---------------------------------------------------

    def _opt(self, name):
        return self.configuration.safe_get('realcloud_' + name) or ''

    def _mount_of(self, proto):
        return {'GLUSTERFS': self._opt('glusterfs_mount'),
                'CEPHFS': self._opt('cephfs_mount')}.get(proto, '')

    @staticmethod
    def _subdir(proto, share_id):
        if proto == 'GLUSTERFS':
            return 'share-%s' % share_id
        if proto == 'CEPHFS':
            return 'volumes/_nogroup/%s' % share_id
        return 'exports/%s' % share_id

    def _export_path(self, proto, share_id):
        subdir = self._subdir(proto, share_id)
        if proto == 'GLUSTERFS':
            return '%s:/%s/%s' % (self._opt('glusterfs_server'),
                                  self._opt('glusterfs_volume'), subdir)
        if proto == 'CEPHFS':
            return '%s:/%s' % (self._opt('cephfs_mon'), subdir)
        return '%s:/%s' % (self._opt('nfs_server'), subdir)

    def _export_locations(self, proto, share_id):
        return [{'path': self._export_path(proto, share_id),
                 'is_admin_only': False,
                 'metadata': {'preferred': True}}]

    def _usable_root(self, proto):
        """The mounted root for proto's shares, or an exception saying why not."""
        if proto not in SERVED_PROTOCOLS:
            raise exception.InvalidShare(
                reason='this backend serves %s, not %s'
                       % ('/'.join(SERVED_PROTOCOLS), proto))
        if proto == 'NFS':
            return None
        missing = [name for name in REQUIRED_OPTIONS[proto]
                   if not self._opt(name)]
        if missing:
            raise exception.ShareBackendException(
                msg='%s shares are not configured on this backend (no %s)'
                    % (proto, ', '.join('realcloud_' + m for m in missing)))
        root = self._mount_of(proto)
        # A FUSE mount that went away leaves an empty directory behind:
        # writing there would hand out shares that exist nowhere.
        if not os.path.ismount(root):
            raise exception.ShareBackendException(
                msg='%s is not a mount point (the %s mount is gone?)'
                    % (root, proto))
        return root

    # -- driver interface --------------------------------------------------

    def do_setup(self, context):
        configured = [p for p in SERVED_PROTOCOLS
                      if p == 'NFS' or self._mount_of(p)]
        LOG.info('realcloud share backend %s serves %s', self.backend_name,
                 ', '.join(configured))

    def check_for_setup_error(self):
        for proto in ('GLUSTERFS', 'CEPHFS'):
            root = self._mount_of(proto)
            if root and not os.path.ismount(root):
                # Not fatal: its shares go to error, the others still work.
                LOG.warning('realcloud: %s mount %s is not a mount point',
                            proto, root)

    def get_network_allocations_number(self):
        return 0

    def create_share(self, context, share, share_server=None):
        proto = share['share_proto'].upper()
        share_id = share['share_id']
        root = self._usable_root(proto)
        if root is not None:
            path = os.path.join(root, self._subdir(proto, share_id))
            os.makedirs(path, exist_ok=True)
            LOG.info('realcloud: share %s is %s', share_id, path)
        return self._export_locations(proto, share_id)

    def delete_share(self, context, share, share_server=None):
        proto = share['share_proto'].upper()
        if proto == 'NFS' or not self._mount_of(proto):
            # Nothing was made for it: an NFS export is only a path, and a
            # protocol without a mount never created a share (error status).
            return
        root = self._usable_root(proto)
        path = os.path.join(root, self._subdir(proto, share['share_id']))
        if os.path.lexists(path):
            shutil.rmtree(path)
            LOG.info('realcloud: removed %s', path)

    def extend_share(self, share, new_size, share_server=None):
        """A share here is a directory of a GlusterFS volume or CephFS (or an
        NFS path): nothing bounds its size, so growing it is Manila's record
        alone, as for a backend without quotas."""
        LOG.info('realcloud: share %s extended to %d GiB', share['share_id'], new_size)

    def ensure_shares(self, context, shares):
        updates = {}
        for share in shares:
            proto = share['share_proto'].upper()
            updates[share['id']] = {
                'export_locations': self._export_locations(
                    proto, share['share_id']),
                'reapply_access_rules': False,
            }
        return updates

    def get_backend_info(self, context):
        # Manila re-runs ensure_shares when this changes: the export paths
        # depend on exactly these options.
        names = ('nfs_server', 'glusterfs_server', 'glusterfs_volume',
                 'cephfs_mon')
        text = json.dumps({n: self._opt(n) for n in names}, sort_keys=True)
        return {'realcloud_exports': hashlib.sha256(text.encode()).hexdigest()}

    def _refusal(self, proto, rule):
        """Why this backend cannot apply rule (None: it can)."""
        allowed = ACCESS_TYPES.get(proto, ())
        if rule['access_type'] not in allowed:
            return ('only %s access is supported for %s shares'
                    % ('/'.join(allowed) or 'no', proto))
        if proto == 'GLUSTERFS' and rule['access_level'] != 'rw':
            return 'GlusterFS native protocol supports only rw access'
        if (proto == 'CEPHFS' and
                rule['access_to'] == self._opt('cephfs_manila_id')):
            return ('Ceph authentication ID %s must be different than the '
                    'one the Manila service uses' % rule['access_to'])
        return None

    def update_access(self, context, share, access_rules, add_rules,
                      delete_rules, update_rules, share_server=None):
        proto = share['share_proto'].upper()
        # No added or deleted rules: Manila asks to (re)apply them all,
        # after a restart for instance. Rules that already hold a key keep it.
        recovering = not (add_rules or delete_rules)
        updates = {}
        for rule in (access_rules if recovering else add_rules):
            refusal = self._refusal(proto, rule)
            if refusal:
                LOG.error('realcloud: access rule %s (%s %s %s) of share %s '
                          'set to error: %s', rule['access_id'],
                          rule['access_type'], rule['access_to'],
                          rule['access_level'], share['share_id'], refusal)
                updates[rule['access_id']] = {'state': 'error'}
            elif rule['access_type'] == 'cephx' and not (
                    recovering and rule['access_key']):
                updates[rule['access_id']] = {'access_key': cephx_key()}
        # Denying needs no work: nothing enforces the rules on the servers
        # (GlusterFS has no TLS here, Ceph runs with auth none).
        return updates

    def _update_share_stats(self, data=None):
        pool = {
            'pool_name': self._opt('pool_name'),
            # A share is a directory with no quota of its own, so no size is
            # enforced anywhere; a fixed figure keeps the scheduler's
            # capacity filter and weigher (which want numbers) content.
            'total_capacity_gb': POOL_CAPACITY_GB,
            'free_capacity_gb': POOL_CAPACITY_GB,
            'reserved_percentage': 0,
            'reserved_snapshot_percentage': 0,
            'reserved_share_extend_percentage': 0,
            'thin_provisioning': True,
            'dedupe': False,
            'compression': False,
            'qos': False,
            'snapshot_support': False,
            'create_share_from_snapshot_support': False,
            'revert_to_snapshot_support': False,
            'mount_snapshot_support': False,
        }
        stats = {
            'share_backend_name': self.backend_name,
            'vendor_name': 'fuxi realcloud',
            'driver_version': '1.0',
            # The scheduler matches a share's protocol as a substring.
            'storage_protocol': '_'.join(SERVED_PROTOCOLS),
            'pools': [pool],
        }
        stats.update(data or {})
        super()._update_share_stats(stats)
