"""Assemble a VolumeService from a StorageConfig: the only place that wires adapters."""

import functools
import logging
import os

import openstack
import requests
from keystoneauth1 import session as ks_session
from urllib3.util.retry import Retry

from storage_core.attach.baremetal import BareMetalAttacher
from storage_core.attach.brick import Brick
from storage_core.mount_users import MountUsers
from storage_core.attach.devices import DeviceFinder
from storage_core.attach.nova import NovaAttacher
from storage_core.attach.servers import ServerAttachments
from storage_core.attach.share import ShareMounter
from storage_core.backends.cinder import CinderBackend
from storage_core.backends.cinder_copies import CinderBackups, CinderSnapshots
from storage_core.copies import VolumeCopies
from storage_core.backends.manila import ManilaBackend
from storage_core.backends.nova import NovaBackend
from storage_core.config import HOW_TO_CONFIGURE, StorageConfig
from storage_core.errors import ConfigError, Timeout
from storage_core.executor import Executor
from storage_core.fs import Filesystems
from storage_core.host import HostIdentity, InstanceLocator
from storage_core.kinds.block import CinderVolumes
from storage_core.kinds.share import HostAccess, ManilaShares
from storage_core.leases import Leases
from storage_core.locks import volume_lock
from storage_core.pool.claims import PoolClaims
from storage_core.pool.filler import PoolFiller
from storage_core.pool.keeper import PoolKeeper
from storage_core.pool.ledger import PoolLedger
from storage_core.request_context import REQUEST_ID_HEADER, current_request_id
from storage_core.reservations import ReservationJournal
from storage_core.service import VolumeService
from storage_core.sources import SourceResolver
from storage_core.state import StateStore
from storage_core.waits import current_deadline

LOG = logging.getLogger(__name__)



def check_cloud(cloud) -> None:
    """Fail early (without network) when the cloud cannot even be configured."""
    connect(cloud)


# HTTP connections kept per cloud endpoint: one per request thread, so 32
# parallel Creates do not queue for (or keep reopening) requests' default 10.
CONNECTION_POOL_SIZE = 64

# -- how fuxi talks to a cloud that misbehaves ---------------------------------
#
# Every cloud request (Keystone, Cinder, Nova, Manila, and keystoneauth's own
# token and discovery requests) goes through one requests session, on which
# connect() mounts CloudHTTPAdapter. It bounds and retries each request:
#
# * Timeout: an idempotent request (GET, HEAD, PUT, DELETE) waits at most
#   `timeout` seconds to connect and between bytes of the answer, and is tried
#   1 + `retries` times. A POST is tried once (see below), so it gets the time
#   the retries would have had: (1 + retries) * timeout. Either way one
#   request costs at most about (1 + retries) * timeout (+ ~1 s of backoff),
#   30 s with the defaults, well inside the 60 s Docker gives a Remove, and
#   never more than what is left of the caller's deadline
#   (storage_core.waits.deadline), when it set one.
# * Retries, only where a second try cannot do the work twice:
#   - a connection that could not be made (refused, connect timeout): the
#     request was never sent, so any method is retried;
#   - a connection reset or a read timeout after the request was sent, and
#     HTTP 500/502/503/504: retried for idempotent methods only;
#   - HTTP 503 and 429 also for POST: the service refused the request before
#     acting on it (a proxy with no backend, an API worker pool full, a rate
#     limit). A 500 or 502/504 to a POST is not retried: the cloud may have
#     done the work before it failed (a gateway timeout often means exactly
#     that).
#   Why POSTs are not retried after they may have arrived: POST /volumes
#   retried after a lost answer can make two volumes with one name (fuxi's
#   lookup by name then refuses the name as ambiguous until someone deletes
#   one), and POST /attachments (or Nova's os-volume_attachments) a second
#   attachment that nothing records. Such a failure is answered with an
#   error instead; Docker's or the user's retry starts with a lookup by name
#   (Get before Create, the journal before an attach), so it adopts what the
#   lost request made rather than making it again.
# * keystoneauth's own connect_retries / status_code_retries stay 0 (also
#   when clouds.yaml sets them), so nothing retries twice; its one
#   re-authentication on a 401 (a token expired or revoked early) stays.
DEFAULT_CLOUD_TIMEOUT = 10.0
DEFAULT_CLOUD_RETRIES = 2
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Answers worth another try of an idempotent request.
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
# Answers that mean "not done, try later" whatever the method.
REFUSED_STATUSES = frozenset({429, 503})
# Backoff between tries: the first retry at once, then 1 s, 2 s (urllib3's
# exponential backoff, capped).
RETRY_BACKOFF_FACTOR = 0.5
RETRY_BACKOFF_MAX = 2.0
# A request started with less than this left of the caller's deadline would
# only end in a timeout: refuse it at once.
MIN_REQUEST_TIME = 0.05


def is_idempotent(method, url="") -> bool:
    """May this request be sent twice? Idempotent methods may; so may a POST
    asking Keystone for a token: two tokens, and nothing else, come of it."""
    method = (method or "GET").upper()
    if method in IDEMPOTENT_METHODS:
        return True
    return method == "POST" and (url or "").split("?")[0].endswith("/auth/tokens")


class CloudRetry(Retry):
    """urllib3's Retry with the policy above: status retries of POST only for
    answers that say the request was refused before any work."""

    def is_retry(self, method, status_code, has_retry_after=False) -> bool:
        if self._is_method_retryable(method):
            return super().is_retry(method, status_code, has_retry_after)
        return status_code in REFUSED_STATUSES

    def increment(self, method=None, url=None, *args, **kwargs):
        if method and not self._is_method_retryable(method) and is_idempotent(method, url):
            method = "GET"  # a token request: see is_idempotent()
        return super().increment(method, url, *args, **kwargs)

    @classmethod
    def policy(cls, retries) -> "CloudRetry":
        return cls(
            total=retries, connect=retries, read=retries, status=retries, other=0,
            redirect=0,  # keystoneauth follows redirects itself
            allowed_methods=IDEMPOTENT_METHODS,
            status_forcelist=RETRIED_STATUSES,
            backoff_factor=RETRY_BACKOFF_FACTOR,
            backoff_max=RETRY_BACKOFF_MAX,
            # After the last try, hand back the cloud's own answer (its status
            # and message) rather than urllib3's "too many 503 error responses".
            raise_on_status=False,
            # Our backoff only: a Retry-After could ask for minutes.
            respect_retry_after_header=False,
        )


class CloudHTTPAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with fuxi's timeouts and retries (see above)."""

    def __init__(self, timeout=DEFAULT_CLOUD_TIMEOUT, retries=DEFAULT_CLOUD_RETRIES,
                 pool_size=CONNECTION_POOL_SIZE):
        self.timeout = float(timeout)
        self.retries = int(retries)
        # What one POST may take: it is tried once, so it gets the retries' time too.
        self.once_timeout = self.timeout * (1 + self.retries)
        # The sleeps between the tries of one request, at most.
        self.backoff_total = sum(min(RETRY_BACKOFF_MAX, RETRY_BACKOFF_FACTOR * 2 ** (n - 1))
                                 for n in range(2, self.retries + 1))
        super().__init__(pool_connections=pool_size, pool_maxsize=pool_size,
                         max_retries=CloudRetry.policy(self.retries))

    def request_timeout(self, method, asked=None, url="") -> float:
        """The timeout of one request: by method, never above `asked` (a
        caller's own) nor what is left of the current deadline."""
        method = (method or "GET").upper()
        idempotent = is_idempotent(method, url)
        mine = self.timeout if idempotent else self.once_timeout
        if isinstance(asked, (int, float)) and asked > 0:
            mine = min(mine, float(asked))
        budget = current_deadline()
        if budget is not None:
            left = budget.time_left()
            if left < MIN_REQUEST_TIME:
                raise Timeout(
                    f"{budget.what} must answer within {budget.seconds:g} s and its time is up; "
                    f"{method} {url.split('?')[0]} was not sent"
                )
            if idempotent:
                # Every try (and the backoff between them) fits in what is left.
                left = max((left - self.backoff_total) / (1 + self.retries), MIN_REQUEST_TIME)
            mine = min(mine, left)
        return mine

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        timeout = self.request_timeout(request.method, timeout, request.url or "")
        # The call being served (storage_core.request_context) names itself to the
        # cloud, which logs the id: one grep finds the call on both sides. An id
        # set by whoever built the request (openstacksdk's global_request) stays.
        request_id = current_request_id()
        if request_id is not None and REQUEST_ID_HEADER not in request.headers:
            request.headers[REQUEST_ID_HEADER] = request_id
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                            proxies=proxies)


class CloudSession(ks_session.Session):
    """keystoneauth's Session, re-authenticating every request refused with 401.

    On a 401 keystoneauth invalidates the token and, if that "did something",
    fetches a new one and sends the request once more. When several threads
    meet the same expired token (Get looks a name up in Cinder and Manila at
    once), the first one invalidates it and the others find nothing left to
    invalidate, so keystoneauth gave them up with the 401 although a new
    token was on its way. Here they retry too, with the token the first one
    fetches (keystoneauth lets one thread at a time fetch it).
    """

    def invalidate(self, auth=None) -> bool:
        plugin = self._auth_required(auth, "validate")
        if plugin.invalidate():
            return True
        # Nothing to invalidate: another thread did, and is getting a new token.
        return getattr(plugin, "auth_ref", False) is None


def connect(cloud, timeout=DEFAULT_CLOUD_TIMEOUT, retries=DEFAULT_CLOUD_RETRIES) -> "openstack.connection.Connection":
    """An openstacksdk Connection whose requests are bounded and retried as above."""
    connection = _connect(cloud)
    # Before the first use of connection.session, which builds it.
    connection.config.set_session_constructor(CloudSession)
    adapter = CloudHTTPAdapter(timeout, retries)
    for scheme in ("http://", "https://"):
        connection.session.session.mount(scheme, adapter)
    return connection


# keystoneauth-level retries off: CloudHTTPAdapter retries, knowing whether a
# request was sent (keystoneauth's connect_retries would resend a POST after
# a read timeout too).
_NO_KEYSTONEAUTH_RETRIES = {"connect_retries": 0, "status_code_retries": 0}


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
                **_NO_KEYSTONEAUTH_RETRIES,
            )
        return openstack.connect(cloud=cloud.cloud_name, region_name=cloud.region_name,
                                 **_NO_KEYSTONEAUTH_RETRIES)
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


def build_volume_service(config: StorageConfig, connection=None, judge_stale_mounts=True,
                         mounts_here=True, binds_mounts=False) -> VolumeService:
    """`judge_stale_mounts`: drop a counted mount no other mount namespace holds
    (a container engine may never unmount a dead container's volume); a caller that
    always says when it is done with a mount (a CSI node) passes False.
    `mounts_here`: False for a service that only creates, deletes and attaches
    volumes elsewhere (a CSI controller): nothing on the cloud is taken for a
    leftover of this host, since a node on this same host may be using it.
    `binds_mounts`: the caller binds each volume's mount elsewhere on this host
    (a CSI node): a volume whose own mount is gone while its device is still
    mounted (such a bind outlived it) is then never detached."""
    connection = connection or connect(config.cloud, config.cloud_timeout, config.cloud_retries)
    executor = Executor()
    filesystems = Filesystems(executor)
    state = StateStore(config.state_db)
    kinds, keeper, copies, servers = [], None, None, None
    if "cinder" in config.backends:
        cinder, keeper, copies, servers = _cinder_volumes(config, connection, executor, filesystems, state,
                                                          binds_mounts)
        kinds.append(cinder)
    if "manila" in config.backends:
        kinds.append(_manila_shares(config, connection, executor, filesystems, mounts_here))
    return VolumeService(
        kinds=kinds,
        filesystems=filesystems,
        state=state,
        mount_root=config.effective_mount_root,
        lock_dir=config.lock_dir,
        default_backend=config.default_backend,
        pools=keeper,
        mount_users=MountUsers() if judge_stale_mounts else None,
        stale_mount_grace=config.stale_mount_grace,
        copies=copies,
        servers=servers,
    )


def _cinder_volumes(config, connection, executor, filesystems, state, binds_mounts=False):
    """The Cinder kind, the keeper of its warm pools (None without pools), its
    snapshots and backups, and its attachments to other Nova servers."""
    backend = CinderBackend(
        connection,
        create_timeout=config.create_timeout,
        delete_timeout=config.delete_timeout,
        reservations=ReservationJournal(state),
    )
    timeouts = {"timeout": config.create_timeout, "delete_timeout": config.delete_timeout}
    snapshots, backups = CinderSnapshots(connection, **timeouts), CinderBackups(connection, **timeouts)
    sources = SourceResolver(backend, snapshots, backups, config.limits)
    copies = VolumeCopies(backend, snapshots, backups, sources, filesystems, state,
                          functools.partial(volume_lock, config.lock_dir), config.freeze_timeout,
                          config.backup_timeout, config.unfrozen_clones)
    attacher = build_attacher(config, connection, backend, executor)
    # Nova is asked only when a volume is attached to another server.
    servers = ServerAttachments(NovaBackend(connection), backend, in_use_timeout=config.attach_timeout,
                                detach_timeout=config.delete_timeout)
    host_name = HostIdentity.detect(config.host_name, config.host_ip).name
    leases = Leases(host_name, config.lease_seconds, config.preempt)
    if not config.pools:
        return (CinderVolumes(backend, attacher, filesystems, config.limits, sources=sources, leases=leases,
                              binds_mounts=binds_mounts), None, copies, servers)
    ledger = PoolLedger(config.state_db)
    filler = PoolFiller(backend, attacher, filesystems, ledger, os.path.join(config.state_dir, "pool"), host_name)
    claims = PoolClaims(config.pools, backend, filesystems, ledger)
    keeper = PoolKeeper(config.pools, filler, claims, ledger, backend, filesystems, host_name)
    return (CinderVolumes(backend, attacher, filesystems, config.limits, claims, sources, leases, binds_mounts),
            keeper, copies, servers)


def _manila_shares(config, connection, executor, filesystems, mounts_here=True) -> ManilaShares:
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
    host = HostAccess.for_host(HostIdentity.detect(config.host_name, config.host_ip), shares) if mounts_here else None
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
