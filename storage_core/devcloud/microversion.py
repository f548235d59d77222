"""Microversion rules: which version a request asked for (Cinder, and Nova).

Clients (keystoneauth) send ``OpenStack-API-Version: volume 3.X``; old clients
send ``X-OpenStack-Volume-API-Version: 3.X``. No header means the minimum,
3.0, exactly as Cinder does - so a client that forgets to ask for 3.27 gets a
404 on the attachments API here just as it would against a real cloud.
Nova's rules are the same with ``compute 2.X`` and
``X-OpenStack-Nova-API-Version`` (see nova.py).
"""

import re
from dataclasses import dataclass
from functools import total_ordering

SERVICE = "volume"
HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Volume-API-Version"

_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


class VersionError(Exception):
    """A version header Cinder would refuse; ``status`` is 400 or 406."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


@total_ordering
@dataclass(frozen=True)
class APIVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> "APIVersion":
        match = _VERSION_RE.match(text.strip())
        if not match:
            raise VersionError(
                400,
                f"API Version String {text.strip()} is of invalid format. "
                "Must be of format MajorNum.MinorNum.",
            )
        return cls(int(match.group(1)), int(match.group(2)))

    def __lt__(self, other):
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self):
        return f"{self.major}.{self.minor}"


MIN_VERSION = APIVersion(3, 0)
MAX_VERSION = APIVersion(3, 71)

# Microversions devcloud's behaviour depends on (named as in Cinder).
NEW_ATTACH = APIVersion(3, 27)
VOLUME_EXTEND_INUSE = APIVersion(3, 42)
RESOURCE_FILTER = APIVersion(3, 34)
GROUP_VOLUME = APIVersion(3, 13)
VOLUME_DETAIL_PROVIDER_ID = APIVersion(3, 21)
SHARED_TARGETS_AND_SERVICE_FIELDS = APIVersion(3, 48)
NEW_ATTACH_COMPLETION = APIVersion(3, 44)
ATTACHMENT_CREATE_MODE_ARG = APIVersion(3, 54)
VOLUME_CLUSTER_NAME = APIVersion(3, 61)
VOLUME_TYPE_ID_IN_VOLUME_DETAIL = APIVersion(3, 63)
USE_QUOTA = APIVersion(3, 65)


def _header(headers, name):
    # http.server's message object and plain dicts differ in case handling.
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    if value is None and isinstance(headers, dict):
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name.lower())
    return value


@dataclass(frozen=True)
class Negotiator:
    """One service's microversion rules (Cinder and Nova share the scheme).

    ``echo_legacy``: Nova also answers with its legacy header; Cinder does not.
    """

    service: str
    legacy_header: str
    min_version: APIVersion
    max_version: APIVersion
    echo_legacy: bool = False

    def requested_text(self, headers) -> str | None:
        """The version string asked for, or None when the request names none."""
        value = _header(headers, HEADER)
        if value:
            # "volume 3.27" or a list like "compute 2.1, volume 3.27"; entries
            # for other services are not ours to judge.
            for entry in value.split(","):
                parts = entry.strip().split(None, 1)
                if len(parts) == 2 and parts[0].lower() == self.service:
                    return parts[1].strip()
            return None
        legacy = _header(headers, self.legacy_header)
        if legacy:
            return legacy.strip()
        return None

    def negotiate(self, headers) -> APIVersion:
        """The version to serve this request at; raises VersionError like the service."""
        text = self.requested_text(headers)
        if text is None:
            return self.min_version
        if text.lower() == "latest":
            return self.max_version
        version = APIVersion.parse(text)
        if not self.min_version <= version <= self.max_version:
            raise VersionError(
                406,
                f"Version {version} is not supported by the API. "
                f"Minimum is {self.min_version} and maximum is {self.max_version}.",
            )
        return version

    def response_headers(self, version: APIVersion) -> dict:
        headers = {HEADER: f"{self.service} {version}"}
        if self.echo_legacy:
            headers[self.legacy_header] = str(version)
            headers["Vary"] = f"{HEADER}, {self.legacy_header}"
        else:
            headers["Vary"] = HEADER
        return headers


VOLUME = Negotiator(SERVICE, LEGACY_HEADER, MIN_VERSION, MAX_VERSION)


def requested_text(headers) -> str | None:
    return VOLUME.requested_text(headers)


def negotiate(headers) -> APIVersion:
    """The Cinder version to serve this request at; raises VersionError like Cinder."""
    return VOLUME.negotiate(headers)


def response_headers(version: APIVersion) -> dict:
    return VOLUME.response_headers(version)


def serve_versioned(identity, negotiator, req, dispatch, error):
    """What every service does once past its version documents: check the token,
    settle the microversion, dispatch(claims, version), echo the version used.

    error(status, message) shapes a refusal the way the service does.
    """
    claims = identity.validate(req.headers.get("X-Auth-Token"))
    if claims is None:
        return identity.unauthorized()
    try:
        version = negotiator.negotiate(req.headers)
    except VersionError as exc:
        return error(exc.status, exc.message)
    resp = dispatch(claims, version)
    resp.headers.update(negotiator.response_headers(version))
    return resp
