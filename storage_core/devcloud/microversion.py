"""Cinder's microversion rules: which version a request asked for.

Clients (keystoneauth) send ``OpenStack-API-Version: volume 3.X``; old clients
send ``X-OpenStack-Volume-API-Version: 3.X``. No header means the minimum,
3.0, exactly as Cinder does - so a client that forgets to ask for 3.27 gets a
404 on the attachments API here just as it would against a real cloud.
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


def requested_text(headers) -> str | None:
    """The version string asked for, or None when the request names none."""
    value = _header(headers, HEADER)
    if value:
        # "volume 3.27" or a list like "compute 2.1, volume 3.27"; entries for
        # other services are not ours to judge.
        for entry in value.split(","):
            parts = entry.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == SERVICE:
                return parts[1].strip()
        return None
    legacy = _header(headers, LEGACY_HEADER)
    if legacy:
        return legacy.strip()
    return None


def negotiate(headers) -> APIVersion:
    """The version to serve this request at; raises VersionError like Cinder."""
    text = requested_text(headers)
    if text is None:
        return MIN_VERSION
    if text.lower() == "latest":
        return MAX_VERSION
    version = APIVersion.parse(text)
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise VersionError(
            406,
            f"Version {version} is not supported by the API. "
            f"Minimum is {MIN_VERSION} and maximum is {MAX_VERSION}.",
        )
    return version


def response_headers(version: APIVersion) -> dict:
    return {HEADER: f"{SERVICE} {version}", "Vary": HEADER}
