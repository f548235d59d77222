"""Assemble a VolumeService from a StorageConfig: the only place that wires adapters."""

import logging
import os

import openstack
import requests

from storage_core.attach.baremetal import BareMetalAttacher
from storage_core.attach.brick import Brick
from storage_core.attach.devices import DeviceFinder
from storage_core.attach.nova import NovaAttacher
from storage_core.attach.share import ShareMounter
from storage_core.backends.cinder import CinderBackend
from storage_core.backends.manila import ManilaBackend
from storage_core.backends.nova import NovaBackend
from storage_core.config import HOW_TO_CONFIGURE, StorageConfig
from storage_core.errors import ConfigError
from storage_core.executor import Executor
from storage_core.fs import Filesystems
from storage_core.host import HostIdentity, InstanceLocator
from storage_core.kinds.block import CinderVolumes
from storage_core.kinds.share import HostAccess, ManilaShares
from storage_core.pool.claims import PoolClaims
from storage_core.pool.filler import PoolFiller
from storage_core.pool.keeper import PoolKeeper
from storage_core.pool.ledger import PoolLedger
from storage_core.service import VolumeService
from storage_core.state import StateStore

LOG = logging.getLogger(__name__)



def check_cloud(cloud) -> None:
    """Fail early (without network) when the cloud cannot even be configured."""
    connect(cloud)


# HTTP connections kept per cloud endpoint: one per request thread, so 32
# parallel Creates do not queue for (or keep reopening) requests' default 10.
CONNECTION_POOL_SIZE = 64


def connect(cloud) -> "openstack.connection.Connection":
    connection = _connect(cloud)
    adapter = requests.adapters.HTTPAdapter(pool_connections=CONNECTION_POOL_SIZE,
                                            pool_maxsize=CONNECTION_POOL_SIZE)
    for scheme in ("http://", "https://"):
        connection.session.session.mount(scheme, adapter)
    return connection


def _connect(cloud) -> "openstack.connection.Connection":
    if not cloud.configured:
        raise ConfigError(HOW_TO_CONFIGURE)
    try:
        if cloud.auth:
            return openstack.connection.Connection(
                auth=dict(cloud.auth),
                region_name=cloud.region_name,
                identity_api_version="3",
                block_storage_api_version="3",
                shared_file_system_api_version="2",
            )
        return openstack.connect(cloud=cloud.cloud_name, region_name=cloud.region_name)
    except openstack.exceptions.ConfigException as exc:
        raise ConfigError(f"cannot use cloud {cloud.cloud_name!r}: {exc}") from exc


def check_host(config: StorageConfig) -> str:
    """Fail early (no cloud calls) when this host cannot attach the configured way.

    Returns the attach mode; in nova mode the instance must be identifiable.
    """
    locator = InstanceLocator.from_config(config)
    mode = choose_attach_mode(config, locator)
    if mode == "nova":
        locator.find()
    return mode


def build_volume_service(config: StorageConfig, connection=None) -> VolumeService:
    connection = connection or connect(config.cloud)
    executor = Executor()
    filesystems = Filesystems(executor)
    kinds, keeper = [], None
    if "cinder" in config.backends:
        cinder, keeper = _cinder_volumes(config, connection, executor, filesystems)
        kinds.append(cinder)
    if "manila" in config.backends:
        kinds.append(_manila_shares(config, connection, executor, filesystems))
    return VolumeService(
        kinds=kinds,
        filesystems=filesystems,
        state=StateStore(config.state_db),
        mount_root=config.effective_mount_root,
        lock_dir=config.lock_dir,
        default_backend=config.default_backend,
        pools=keeper,
    )


def _cinder_volumes(config, connection, executor, filesystems):
    """The Cinder kind, and the keeper of its warm pools (None without pools)."""
    backend = CinderBackend(
        connection,
        create_timeout=config.create_timeout,
        delete_timeout=config.delete_timeout,
    )
    attacher = build_attacher(config, connection, backend, executor)
    if not config.pools:
        return CinderVolumes(backend, attacher, filesystems, config.limits), None
    host_name = HostIdentity.detect(config.host_name, config.host_ip).name
    ledger = PoolLedger(config.state_db)
    filler = PoolFiller(backend, attacher, filesystems, ledger, os.path.join(config.state_dir, "pool"), host_name)
    claims = PoolClaims(config.pools, backend, filesystems, ledger)
    keeper = PoolKeeper(config.pools, filler, claims, ledger, backend, filesystems, host_name)
    return CinderVolumes(backend, attacher, filesystems, config.limits, claims), keeper


def _manila_shares(config, connection, executor, filesystems) -> ManilaShares:
    shares = config.shares
    backend = ManilaBackend(
        connection,
        create_timeout=config.create_timeout,
        delete_timeout=config.delete_timeout,
        access_timeout=shares.access_timeout,
    )
    mounter = ShareMounter(
        executor,
        filesystems,
        keyring_dir=os.path.join(config.state_dir, "keys"),
        nfs_options=shares.nfs_mount_options,
        cephfs_client=shares.cephfs_client,
        ceph_conf=shares.ceph_conf,
    )
    host = HostAccess.for_host(HostIdentity.detect(config.host_name, config.host_ip), shares)
    return ManilaShares(backend, mounter, host, config.limits, shares)


def choose_attach_mode(config: StorageConfig, locator: InstanceLocator) -> str:
    """Return "baremetal" or "nova"; "auto" picks nova only when local files say this is a Nova instance."""
    if config.attach_mode != "auto":
        LOG.info("attach mode %s, as configured", config.attach_mode)
        return config.attach_mode
    evidence = locator.local_evidence()
    if evidence:
        LOG.info("attach mode nova: %s", evidence)
        return "nova"
    LOG.info(
        "attach mode baremetal: no instance_id, no cloud-init instance in %s, no config drive "
        "(set attach_mode = nova to attach through Nova anyway)",
        config.cloud_init_dir,
    )
    return "baremetal"


def build_attacher(config: StorageConfig, connection, backend, executor):
    locator = InstanceLocator.from_config(config)
    if choose_attach_mode(config, locator) == "baremetal":
        host = HostIdentity.detect(config.host_name, config.host_ip)
        return BareMetalAttacher(backend, Brick(config.lock_dir), host)
    # Resolved now, so a host that cannot say which instance it is fails at start, not at a Mount.
    instance = locator.find()
    devices = DeviceFinder(
        executor,
        disk_root=config.disk_root,
        sysfs_root=config.sysfs_root,
        timeout=config.device_timeout,
        meta_data=locator.meta_data,
    )
    return NovaAttacher(
        NovaBackend(connection),
        backend,
        devices,
        instance.uuid,
        # One budget: Nova + Cinder get what the guest's disk wait leaves of attach_timeout.
        in_use_timeout=config.attach_timeout - config.device_timeout,
        detach_timeout=config.delete_timeout,
    )
