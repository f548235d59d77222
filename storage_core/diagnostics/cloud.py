"""The cloud checks: configured, reachable, credentials accepted, the services
and API versions storage_core uses, this host's Nova server."""

import ipaddress
import urllib.parse
from dataclasses import dataclass
from typing import Callable, Iterator

from storage_core.config import HOW_TO_CONFIGURE, StorageConfig
from storage_core.diagnostics.checks import FAIL, OK, WARN, Check, not_checked
from storage_core.errors import ConfigError

# Manila's share access rules are listed with GET /share-access-rules (2.45).
MANILA_ACCESS_RULES_MICROVERSION = "2.45"

# Service types as the catalog names them, with their older aliases.
SERVICE_TYPES = {
    "cinder": ("block-storage", "volumev3"),
    "nova": ("compute",),
    "manila": ("shared-file-system", "sharev2"),
}
# The openstacksdk proxy of each.
_PROXIES = {"cinder": "block_storage", "nova": "compute", "manila": "shared_file_system"}
_SERVICE_TITLES = {"cinder": "Cinder", "nova": "Nova", "manila": "Manila"}


# -- the cloud, behind one narrow seam -----------------------------------------

@dataclass(frozen=True)
class AuthFacts:
    auth_url: str
    user: str
    project: str | None  # None: the token is scoped to no project


@dataclass(frozen=True)
class EndpointFacts:
    url: str
    min_version: tuple | None  # (major, minor) microversions; None: the service has none
    max_version: tuple | None
    # The one microversion the cloud config pins every request to (e.g.
    # block_storage_api_version: 3.40 in clouds.yaml), if any.
    pinned: tuple | None = None


class CloudProbe:
    """The few cloud reads the checks make, on an openstacksdk Connection."""

    def __init__(self, connection):
        self._conn = connection

    def authenticate(self) -> AuthFacts:
        """A token, now (keystoneauth's exceptions pass through)."""
        session = self._conn.session
        access = session.auth.get_access(session)
        return AuthFacts(
            auth_url=getattr(session.auth, "auth_url", "?"),
            user=access.username or access.user_id,
            project=access.project_name or access.project_id,
        )

    def endpoint(self, service) -> EndpointFacts | None:
        """The service's endpoint and microversion range; None when the catalog has no such service."""
        from keystoneauth1 import exceptions as ks_exceptions

        from keystoneauth1 import discover

        proxy = getattr(self._conn, _PROXIES[service])
        try:
            data = proxy.get_endpoint_data()
        except (ks_exceptions.EndpointNotFound, ks_exceptions.CatalogException):
            return None
        if data is None:
            return None
        pinned = getattr(proxy, "default_microversion", None)
        return EndpointFacts(data.url, data.min_microversion, data.max_microversion,
                             discover.normalize_version_number(pinned) if pinned else None)

    def server(self, server_id) -> dict | None:
        """{name, status} of a Nova server of the project; None when Nova has none of that id."""
        from openstack import exceptions as sdk_exceptions

        try:
            server = self._conn.compute.get_server(server_id)
        except sdk_exceptions.NotFoundException:
            return None
        return {"name": server.name, "status": server.status}


def _connect(config: StorageConfig):
    # Imported here: the factory wires every adapter, which a caller that only
    # wants Check need not load.
    from storage_core.factory import connect

    # No retries: a doctor reports a cloud that does not answer rather than
    # waiting out every retry of every request.
    return connect(config.cloud, timeout=min(config.cloud_timeout, 10.0), retries=0)


def _cloud_name(config: StorageConfig) -> str:
    if config.cloud.cloud_name:
        return f"cloud {config.cloud.cloud_name!r}"
    return "the cloud given by explicit auth"


def is_loopback_url(url) -> bool:
    host = urllib.parse.urlsplit(url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _version_text(version) -> str:
    return "none" if version is None else f"{version[0]}.{version[1]}"


def _offered(facts: EndpointFacts) -> str:
    text = f"{_version_text(facts.min_version)} to {_version_text(facts.max_version)}"
    return text + (f", pinned to {_version_text(facts.pinned)} by the cloud config" if facts.pinned else "")


def _at_least(facts: EndpointFacts, wanted: str) -> bool:
    """Whether requests at microversion `wanted` will be sent and accepted (as
    openstacksdk's supports_microversion decides: a pinned version caps it)."""
    from keystoneauth1 import discover

    wanted = discover.normalize_version_number(wanted)
    if facts.max_version is None or facts.max_version < wanted:
        return False
    return facts.pinned is None or (facts.pinned[0] == wanted[0] and facts.pinned >= wanted)


def _cloud_exceptions() -> tuple:
    """What a cloud read may raise: keystoneauth's and openstacksdk's exceptions."""
    from keystoneauth1 import exceptions as ks_exceptions
    from openstack import exceptions as sdk_exceptions

    return ks_exceptions.ClientException, sdk_exceptions.SDKException


def _auth_failure(config: StorageConfig, exc: Exception) -> Check:
    from keystoneauth1 import exceptions as ks_exceptions

    name = _cloud_name(config)
    entry = f"the clouds.yaml entry {config.cloud.cloud_name!r}" if config.cloud.cloud_name else "the auth settings"
    if isinstance(exc, ks_exceptions.Unauthorized):
        return Check("cloud", "Keystone auth", FAIL,
                     f"Keystone refused the credentials of {name} (HTTP 401)",
                     f"correct the username and password (or application_credential_id and _secret) and the "
                     f"user and project domains in {entry}; `openstack --os-cloud NAME token issue` tries them")
    if isinstance(exc, ks_exceptions.SSLError):
        return Check("cloud", "Keystone auth", FAIL, f"TLS to Keystone failed for {name}: {exc}",
                     f"set cacert in {entry} to the CA that signed Keystone's certificate")
    if isinstance(exc, (ks_exceptions.ConnectionError, ks_exceptions.DiscoveryFailure)):
        return Check("cloud", "Keystone auth", FAIL, f"cannot reach Keystone for {name}: {exc}",
                     f"check auth_url in {entry} and that this host reaches it (firewall, proxy variables)")
    return Check("cloud", "Keystone auth", FAIL, f"authenticating to {name} failed: {exc}",
                 f"check the auth section of {entry}")


class CloudDiagnosis:
    """Cloud checks, in order; later ones are reported as not checked when an
    earlier one they need failed."""

    def __init__(self, config: StorageConfig, attach_mode: str | None, instance_uuid: str | None = None,
                 probe_factory: Callable[[StorageConfig], CloudProbe] | None = None):
        self.config = config
        self.attach_mode = attach_mode
        self.instance_uuid = instance_uuid
        self._probe_factory = probe_factory or (lambda config: CloudProbe(_connect(config)))
        # After run(): whether Manila is in the catalog (None: not known).
        self.manila_available = None
        self.auth_url = None

    def _needed(self) -> dict:
        """{service: True if storage cannot work without it, False if optional}."""
        needed = {}
        if "cinder" in self.config.backends:
            needed["cinder"] = True
        if self.attach_mode == "nova":
            needed["nova"] = True
        if "manila" in self.config.backends:
            # A cloud without Manila still serves Cinder volumes, unless shares are the default.
            needed["manila"] = self.config.default_backend == "manila"
        return needed

    def run(self) -> Iterator[Check]:
        config = self.config
        if not config.cloud.configured:
            yield Check("cloud", "cloud configured", FAIL, "no cloud is named", HOW_TO_CONFIGURE)
            return
        try:
            probe = self._probe_factory(config)
        except ConfigError as exc:
            yield Check("cloud", "cloud configured", FAIL, str(exc),
                        f"add an entry {config.cloud.cloud_name!r} under `clouds:` in clouds.yaml (read from "
                        "$OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml, "
                        "/etc/openstack/clouds.yaml), or name an existing entry as the cloud in the config")
            return
        yield Check("cloud", "cloud configured", OK, f"{_cloud_name(config)}"
                    + (f", region {config.cloud.region_name}" if config.cloud.region_name else ""))
        try:
            auth = probe.authenticate()
        except _cloud_exceptions() as exc:
            yield _auth_failure(config, exc)
            yield not_checked("cloud", "catalog and API versions", "no token (Keystone auth failed)")
            return
        self.auth_url = auth.auth_url
        if auth.project is None:
            yield Check("cloud", "Keystone auth", FAIL,
                        f"authenticated at {auth.auth_url} as {auth.user}, but the token is scoped to no project",
                        "set project_name (with project_domain_name) or project_id in the clouds.yaml entry")
            return
        yield Check("cloud", "Keystone auth", OK,
                    f"token from {auth.auth_url} for user {auth.user}, project {auth.project}")
        endpoints = {}
        for service, required in self._needed().items():
            title = _SERVICE_TITLES[service]
            try:
                endpoints[service] = facts = probe.endpoint(service)
            except _cloud_exceptions() as exc:
                # In the catalog, but its version document did not come (an
                # internal URL this host cannot reach, a proxy, TLS).
                yield Check("cloud", f"{title} in the catalog", FAIL if required else WARN,
                            f"listed, but its endpoint did not answer: {exc}",
                            "make the endpoint reachable from this host, or choose the interface it can reach "
                            "(interface: public/internal in the clouds.yaml entry)")
                continue
            yield self._catalog_check(service, required, facts)
        for service, facts in endpoints.items():
            if facts is not None:
                yield self._version_check(service, facts)
        if "manila" in self._needed():
            self.manila_available = endpoints.get("manila") is not None
        if self.attach_mode == "nova" and endpoints.get("nova") is not None:
            try:
                yield self._server_check(probe)
            except _cloud_exceptions() as exc:
                yield Check("cloud", "this host's Nova server", FAIL, f"Nova did not answer: {exc}",
                            "check that the user may read servers of the project (Nova's policy)")

    def _catalog_check(self, service, required, facts) -> Check:
        title = _SERVICE_TITLES[service]
        what = f"{title} in the catalog"
        if facts is not None:
            return Check("cloud", what, OK, facts.url)
        types = " or ".join(SERVICE_TYPES[service])
        found = f"the catalog has no {types} service"
        if service == "manila":
            fix = ("ask the cloud's operator for Manila, or set backends = cinder in the config "
                   "so nothing expects shares")
            return Check("cloud", what, FAIL if required else WARN,
                         found + ("" if required else "; -o backend=manila cannot be used"), fix)
        if service == "nova":
            return Check("cloud", what, FAIL, found + " (attach_mode is nova)",
                         "set attach_mode = baremetal (Cinder's attachments API and os-brick), or use a "
                         "cloud whose catalog lists Nova")
        return Check("cloud", what, FAIL, found, "use a cloud (or region) whose catalog lists Cinder v3")

    def _version_check(self, service, facts: EndpointFacts) -> Check:
        from storage_core.backends.cinder import ATTACHMENT_COMPLETE_MICROVERSION, ATTACHMENT_CREATE_MICROVERSION
        from storage_core.backends.nova import MULTIATTACH_MICROVERSION, TAGGED_ATTACH_MICROVERSION

        title = _SERVICE_TITLES[service]
        what = f"{title} API microversions"
        offered = _offered(facts)
        if service == "cinder":
            wanted = (ATTACHMENT_COMPLETE_MICROVERSION if self.attach_mode == "baremetal"
                      else ATTACHMENT_CREATE_MICROVERSION)
            if _at_least(facts, wanted):
                return Check("cloud", what, OK, f"{offered} (needs {wanted})")
            why = ("bare-metal attach uses the attachments API (create 3.27, complete 3.44)"
                   if self.attach_mode == "baremetal"
                   else "warm pool claims and start-up repairs use the attachments API (3.27)")
            fix = "use a Cinder of Queens (2018) or later"
            if facts.pinned:
                fix = "unpin block_storage_api_version in the clouds.yaml entry, or " + fix
            if self.attach_mode == "baremetal":
                fix += ", or on a Nova instance set attach_mode = nova (it needs 3.27 only)"
            return Check("cloud", what, FAIL, f"{offered}; {why}", fix)
        if service == "nova":
            missing = [f"{v} ({why})" for v, why in ((MULTIATTACH_MICROVERSION, "multiattach volumes"),
                                                     (TAGGED_ATTACH_MICROVERSION, "tagged attach, the device "
                                                      "lookup's fallback")) if not _at_least(facts, v)]
            if not missing:
                return Check("cloud", what, OK, f"{offered} (uses {TAGGED_ATTACH_MICROVERSION} "
                             f"and {MULTIATTACH_MICROVERSION})")
            return Check("cloud", what, WARN, f"{offered}; below {', '.join(missing)}",
                         "use a Nova of Queens (2018) or later, or unpin compute_api_version in clouds.yaml")
        if _at_least(facts, MANILA_ACCESS_RULES_MICROVERSION):
            return Check("cloud", what, OK, f"{offered} (needs {MANILA_ACCESS_RULES_MICROVERSION})")
        return Check("cloud", what, FAIL if self._needed()["manila"] else WARN,
                     f"{offered}; share access rules are listed at {MANILA_ACCESS_RULES_MICROVERSION} or later",
                     "use a Manila of Stein (2019) or later, or set backends = cinder in the config")

    def _server_check(self, probe) -> Check:
        what = "this host's Nova server"
        if self.instance_uuid is None:
            return not_checked("cloud", what, "this host's instance UUID is unknown (see attach mode)")
        server = probe.server(self.instance_uuid)
        if server is None:
            return Check("cloud", what, FAIL,
                         f"instance {self.instance_uuid} is not a server of the project",
                         "set instance_id in the config to this host's server UUID (`openstack server show "
                         "NAME -f value -c id`), or authenticate to the project the server is in")
        if server["status"] != "ACTIVE":
            return Check("cloud", what, WARN, f"{server['name']} ({self.instance_uuid}) is {server['status']}",
                         "Nova attaches volumes to an ACTIVE server only; start it (`openstack server start`)")
        return Check("cloud", what, OK, f"{server['name']} ({self.instance_uuid}) is ACTIVE")
