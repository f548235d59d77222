"""Turn the caller's create options into a validated VolumeSpec.

Everything is checked before anything is created, and every refusal lists
what is allowed.
"""

from storage_core.config import MIN_SIZE_GB, VolumeLimits
from storage_core.errors import InvalidInput
from storage_core.models import VolumeSpec
from storage_core.names import validate_volume_name

KNOWN_OPTIONS = ("size", "type", "availability_zone", "fstype")
_MAX_TEXT_OPTION = 255


def parse_create_options(name, options, limits: VolumeLimits) -> VolumeSpec:
    validate_volume_name(name)
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidInput(
            f"options must be a map of option names to strings, not {type(options).__name__}"
        )
    unknown = sorted(str(k) for k in options if k not in KNOWN_OPTIONS)
    if unknown:
        raise InvalidInput(
            f"unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)}; known options: {', '.join(KNOWN_OPTIONS)}"
        )
    for key, value in options.items():
        if not isinstance(value, str):
            raise InvalidInput(f"option {key!r} must be a string, not {type(value).__name__}")
    return VolumeSpec(
        name=name,
        size_gb=_parse_size(options.get("size"), limits),
        fstype=_parse_fstype(options.get("fstype"), limits),
        volume_type=_parse_text("type", options.get("type")),
        availability_zone=_parse_text("availability_zone", options.get("availability_zone")),
    )


def _parse_size(raw, limits: VolumeLimits) -> int:
    allowed = f"a whole number of GiB from {MIN_SIZE_GB} to {limits.max_size_gb}"
    if raw is None:
        return limits.default_size_gb
    text = raw.strip()
    if not text.isdigit() or not text.isascii():
        raise InvalidInput(f"option size={raw!r} is not a size; allowed: {allowed}")
    size = int(text)
    if not MIN_SIZE_GB <= size <= limits.max_size_gb:
        raise InvalidInput(f"option size={raw!r} is out of range; allowed: {allowed}")
    return size


def _parse_fstype(raw, limits: VolumeLimits) -> str:
    if raw is None:
        return limits.default_fstype
    if raw not in limits.allowed_fstypes:
        raise InvalidInput(
            f"option fstype={raw!r} is not supported; allowed: {', '.join(limits.allowed_fstypes)}"
        )
    return raw


def _parse_text(key, raw):
    if raw is None:
        return None
    if not raw or len(raw) > _MAX_TEXT_OPTION or not raw.isprintable():
        raise InvalidInput(
            f"option {key}={raw[:40]!r} is not allowed; allowed: 1 to {_MAX_TEXT_OPTION} "
            "printable characters"
        )
    return raw
