"""Assemble a VolumeService from a StorageConfig: the only place that wires adapters."""

import logging

import openstack

from storage_core.attach.baremetal import BareMetalAttacher
from storage_core.attach.brick import Brick
from storage_core.backends.cinder import CinderBackend
from storage_core.config import StorageConfig
from storage_core.errors import ConfigError
from storage_core.executor import Executor
from storage_core.fs import Filesystems
from storage_core.host import HostIdentity
from storage_core.service import VolumeService
from storage_core.state import StateStore

LOG = logging.getLogger(__name__)

HOW_TO_CONFIGURE = (
    "no cloud is configured: name a clouds.yaml entry with the 'cloud' option or the "
    "OS_CLOUD environment variable, or run on the embedded test cloud with --devcloud"
)


def check_cloud(cloud) -> None:
    """Fail early (without network) when the cloud cannot even be configured."""
    connect(cloud)


def connect(cloud) -> "openstack.connection.Connection":
    if not cloud.configured:
        raise ConfigError(HOW_TO_CONFIGURE)
    try:
        if cloud.auth:
            return openstack.connection.Connection(
                auth=dict(cloud.auth),
                region_name=cloud.region_name,
                identity_api_version="3",
                block_storage_api_version="3",
            )
        return openstack.connect(cloud=cloud.cloud_name, region_name=cloud.region_name)
    except openstack.exceptions.ConfigException as exc:
        raise ConfigError(f"cannot use cloud {cloud.cloud_name!r}: {exc}") from exc


def build_volume_service(config: StorageConfig, connection=None) -> VolumeService:
    connection = connection or connect(config.cloud)
    executor = Executor()
    backend = CinderBackend(
        connection,
        create_timeout=config.create_timeout,
        delete_timeout=config.delete_timeout,
    )
    host = HostIdentity.detect(config.host_name, config.host_ip)
    attacher = BareMetalAttacher(backend, Brick(config.lock_dir), host)
    return VolumeService(
        backend=backend,
        attacher=attacher,
        filesystems=Filesystems(executor),
        state=StateStore(config.state_db),
        mount_root=config.effective_mount_root,
        limits=config.limits,
        lock_dir=config.lock_dir,
    )
