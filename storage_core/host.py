"""Who this host is, as the cloud should see it: name and address, and on a
Nova instance, the instance's UUID."""

import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass

import requests

from storage_core.errors import ConfigError

LOG = logging.getLogger(__name__)

# The metadata service answers within milliseconds when it exists; an address
# that swallows packets must not hold up start-up or a Mount for long.
METADATA_TIMEOUT = 2.0
META_DATA_PATH = "openstack/latest/meta_data.json"

HOW_TO_SET_INSTANCE_ID = (
    "set instance_id to this host's Nova server UUID (`openstack server show <name> -f value -c id`), "
    "or use attach_mode = baremetal if this host is not a Nova instance"
)


@dataclass(frozen=True)
class HostIdentity:
    name: str
    ip: str

    @classmethod
    def detect(cls, name=None, ip=None) -> "HostIdentity":
        name = name or socket.gethostname()
        if not ip:
            try:
                ip = socket.gethostbyname(name)
            except OSError:
                ip = "127.0.0.1"
        return cls(name=name, ip=ip)


@dataclass(frozen=True)
class InstanceIdentity:
    """This host's Nova instance UUID and the place it was read from."""

    uuid: str
    source: str


def _as_uuid(value) -> str | None:
    """The canonical (lower-case, dashed) form of a UUID string, or None."""
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        return None


def _read_text(path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _read_json(path) -> dict | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        LOG.warning("%s is not valid JSON; ignored", path)
        return None
    return data if isinstance(data, dict) else None


class InstanceLocator:
    """Finds this host's Nova instance UUID, and reads its Nova metadata.

    Sources are tried cheapest and most deliberate first: what the operator
    configured, then files on this host, then the network, then DMI (last,
    because bare metal has a DMI UUID too, which is no Nova instance's).
    """

    def __init__(
        self,
        instance_id=None,
        cloud_init_dir="/var/lib/cloud",
        config_drive_dir=None,
        metadata_url="http://169.254.169.254",
        dmi_uuid_path="/sys/class/dmi/id/product_uuid",
        metadata_timeout=METADATA_TIMEOUT,
    ):
        self._instance_id = instance_id
        self._cloud_init_dir = cloud_init_dir
        self._config_drive_dir = config_drive_dir
        self._metadata_url = metadata_url.rstrip("/") if metadata_url else None
        self._dmi_uuid_path = dmi_uuid_path
        self._metadata_timeout = metadata_timeout

    @classmethod
    def from_config(cls, config) -> "InstanceLocator":
        return cls(
            instance_id=config.instance_id,
            cloud_init_dir=config.cloud_init_dir,
            config_drive_dir=config.config_drive_dir,
            metadata_url=config.metadata_url,
            dmi_uuid_path=config.dmi_uuid_path,
        )

    # -- the instance UUID ----------------------------------------------

    def find(self) -> InstanceIdentity:
        """The instance UUID from the first source that has one; ConfigError if none."""
        if self._instance_id:
            found = _as_uuid(self._instance_id)
            if found is None:
                raise ConfigError(f"instance_id {self._instance_id!r} is not a UUID; {HOW_TO_SET_INSTANCE_ID}")
            return self._found(found, "configured instance_id")
        checked = ["configured instance_id: not set"]
        for lookup in (self._from_cloud_init, self._from_config_drive, self._from_metadata_service, self._from_dmi):
            value, where, outcome = lookup()
            if value is not None:
                return self._found(value, where)
            checked.append(f"{where}: {outcome}")
        raise ConfigError(
            f"cannot tell which Nova instance this host is (looked at: {'; '.join(checked)}); "
            + HOW_TO_SET_INSTANCE_ID
        )

    @staticmethod
    def _found(value, source) -> InstanceIdentity:
        LOG.info("this host is Nova instance %s (from %s)", value, source)
        return InstanceIdentity(value, source)

    # Each _from_* answers (uuid or None, where it looked, why nothing if nothing).

    def _from_cloud_init(self):
        id_file = os.path.join(self._cloud_init_dir, "data", "instance-id")
        link = os.path.join(self._cloud_init_dir, "instance")
        where = f"cloud-init ({id_file}, {link})"
        candidates = []
        text = _read_text(id_file)
        if text:
            candidates.append(text)
        if os.path.islink(link):
            # cloud-init points `instance` at instances/<instance id>.
            candidates.append(os.path.basename(os.readlink(link).rstrip("/")))
        if not candidates:
            return None, where, "not present"
        for candidate in candidates:
            found = _as_uuid(candidate)
            if found is not None:
                return found, where, None
        # e.g. "iid-datasource-none" or an EC2-style "i-0000001": not a Nova UUID.
        return None, where, f"instance id {candidates[0]!r} is not a UUID"

    def _from_config_drive(self):
        if not self._config_drive_dir:
            return None, "config drive", "config_drive_dir not set"
        path = os.path.join(self._config_drive_dir, META_DATA_PATH)
        return self._uuid_of(self._config_drive_meta_data(), path)

    def _from_metadata_service(self):
        if not self._metadata_url:
            return None, "metadata service", "metadata_url not set"
        url = f"{self._metadata_url}/{META_DATA_PATH}"
        return self._uuid_of(self._metadata_service_meta_data(), url)

    def _from_dmi(self):
        where = f"DMI product UUID ({self._dmi_uuid_path})"
        text = _read_text(self._dmi_uuid_path)
        if not text:
            return None, where, "not readable"
        found = _as_uuid(text.lower())
        if found is None:
            return None, where, f"{text!r} is not a UUID"
        return found, where, None

    @staticmethod
    def _uuid_of(meta_data, where):
        if meta_data is None:
            return None, where, "not available"
        found = _as_uuid(meta_data.get("uuid", ""))
        if found is None:
            return None, where, "no valid 'uuid' in it"
        return found, where, None

    # -- Nova metadata (meta_data.json) ---------------------------------

    def meta_data(self) -> dict | None:
        """meta_data.json, current first: the metadata service lists devices attached
        since boot; a config drive is written once, at boot. None if neither answers."""
        return self._metadata_service_meta_data() or self._config_drive_meta_data()

    def _config_drive_meta_data(self) -> dict | None:
        if not self._config_drive_dir:
            return None
        return _read_json(os.path.join(self._config_drive_dir, META_DATA_PATH))

    def _metadata_service_meta_data(self) -> dict | None:
        if not self._metadata_url:
            return None
        url = f"{self._metadata_url}/{META_DATA_PATH}"
        try:
            with requests.Session() as session:
                # The metadata service is link-local: never ask a proxy for it.
                session.trust_env = False
                response = session.get(url, timeout=self._metadata_timeout)
        except requests.RequestException as exc:
            LOG.debug("metadata service %s did not answer: %s", url, exc)
            return None
        if response.status_code != 200:
            LOG.debug("metadata service %s answered HTTP %s", url, response.status_code)
            return None
        try:
            data = response.json()
        except ValueError:
            LOG.warning("metadata service %s sent something that is not JSON; ignored", url)
            return None
        return data if isinstance(data, dict) else None

    # -- the cheap check for attach_mode = auto -------------------------

    def local_evidence(self) -> str | None:
        """Why this host looks like a Nova instance, from local files only; None if it does not.

        Neither the metadata service nor DMI is consulted: the probe would send
        packets off this machine, and bare metal has a DMI UUID as well.
        """
        if self._instance_id:
            return "instance_id is configured"
        value, where, _ = self._from_cloud_init()
        if value is not None:
            return f"{where} names instance {value}"
        value, where, _ = self._from_config_drive()
        if value is not None:
            return f"a config drive ({where}) names instance {value}"
        return None

    def looks_like_nova_instance(self) -> bool:
        return self.local_evidence() is not None
