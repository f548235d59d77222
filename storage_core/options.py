"""Turn the caller's create options into a validated VolumeSpec or ShareSpec.

Everything is checked before anything is created, and every refusal lists
what is allowed. `backend` picks where the volume lives; the other options
belong to that backend.
"""

import uuid

from storage_core.config import MIN_SIZE_GB, ShareConfig, VolumeLimits
from storage_core.errors import InvalidInput
from storage_core.models import MULTIATTACH_MODES, SHARE_PROTOCOLS, ShareSpec, SourceRef, VolumeSpec
from storage_core.names import validate_volume_name

BACKEND_OPTION = "backend"
# "source" names another volume; "snapshot" and "backup" name Cinder's copies.
SOURCE_OPTIONS = {"snapshot": "snapshot", "backup": "backup", "source": "volume"}
VOLUME_OPTIONS = ("size", "type", "availability_zone", "fstype", "volume_id", "multiattach", "preempt",
                  *SOURCE_OPTIONS)
SHARE_OPTIONS = ("size", "proto", "share_type", "share_network", "availability_zone", "share_id")
_MAX_TEXT_OPTION = 255
_MAX_SIZE_DIGITS = 9


def split_backend(name, options, default_backend, enabled_backends) -> tuple[str, dict]:
    """Check the name and the shape of the options; return (backend, the other options)."""
    validate_volume_name(name)
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidInput(
            f"options must be a map of option names to strings, not {type(options).__name__}"
        )
    for key, value in options.items():
        if not isinstance(value, str):
            raise InvalidInput(f"option {_shorten(key)!r} must be a string, not {type(value).__name__}")
    rest = dict(options)
    backend = rest.pop(BACKEND_OPTION, default_backend).strip().lower()
    if backend not in enabled_backends:
        raise InvalidInput(
            f"option backend={_shorten(options.get(BACKEND_OPTION))!r} is not available; allowed: "
            f"{', '.join(enabled_backends)}"
        )
    return backend, rest


def parse_volume_options(name, options, limits: VolumeLimits) -> VolumeSpec:
    """Options of a Cinder volume (already split from `backend`)."""
    _refuse_unknown(options, VOLUME_OPTIONS, "a Cinder volume")
    adopt = _parse_volume_id(options.get("volume_id"))
    if adopt is not None:
        _refuse_beside_adoption(options, "volume_id", "volume", "size, type, placement and file system")
        return VolumeSpec(name=name, size_gb=0, fstype="", adopt_volume_id=adopt)
    source = _parse_source(options)
    if source is not None:
        if "fstype" in options:
            raise InvalidInput(
                f"option fstype cannot come with {_source_option(source)}: a volume made from a {source.kind} "
                "has its file system; drop fstype"
            )
        return VolumeSpec(
            name=name,
            # 0: the source's size (Cinder's default); a size given must be at least that.
            size_gb=_parse_size(options["size"], limits) if "size" in options else 0,
            fstype="",
            volume_type=_parse_text("type", options.get("type")),
            availability_zone=_parse_text("availability_zone", options.get("availability_zone")),
            source=source,
            multiattach=_parse_multiattach(options.get("multiattach")),
            preempt=_parse_flag("preempt", options.get("preempt")),
        )
    return VolumeSpec(
        name=name,
        size_gb=_parse_size(options.get("size"), limits),
        fstype=_parse_fstype(options.get("fstype"), limits),
        volume_type=_parse_text("type", options.get("type")),
        availability_zone=_parse_text("availability_zone", options.get("availability_zone")),
        multiattach=_parse_multiattach(options.get("multiattach")),
        preempt=_parse_flag("preempt", options.get("preempt")),
    )


def _parse_flag(key, raw) -> bool:
    if raw is None:
        return False
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise InvalidInput(f"option {key}={_shorten(raw)!r} is not allowed; allowed: true or false")
    return value == "true"


def _parse_multiattach(raw):
    if raw is None:
        return None
    mode = raw.strip().lower()
    if mode not in MULTIATTACH_MODES:
        raise InvalidInput(
            f"option multiattach={_shorten(raw)!r} is not allowed; allowed: exclusive (one host at a time) or "
            "shared (several hosts at once, on a file system that is not a cluster file system)"
        )
    return mode


def parse_share_options(name, options, limits: VolumeLimits, shares: ShareConfig) -> ShareSpec:
    """Options of a Manila share (already split from `backend`)."""
    _refuse_unknown(options, SHARE_OPTIONS, "a Manila share")
    adopt = _parse_text("share_id", options.get("share_id"))
    if adopt is not None:
        _refuse_beside_adoption(options, "share_id", "share", "size, protocol and placement")
        return ShareSpec(name=name, size_gb=0, proto="", adopt_share_id=adopt)
    return ShareSpec(
        name=name,
        size_gb=_parse_size(options.get("size"), limits),
        proto=_parse_proto(options.get("proto"), shares.default_proto),
        share_type=_parse_text("share_type", options.get("share_type")) or shares.share_type,
        share_network=_parse_text("share_network", options.get("share_network")) or shares.share_network,
        availability_zone=_parse_text("availability_zone", options.get("availability_zone")),
    )


def _parse_source(options) -> SourceRef | None:
    """The one source a volume is made from, if any (by name or id)."""
    given = [key for key in SOURCE_OPTIONS if key in options]
    if len(given) > 1:
        raise InvalidInput(
            f"options {' and '.join(given)} both name where the volume's data comes from; give one of "
            f"{', '.join(SOURCE_OPTIONS)}"
        )
    if not given:
        return None
    key = given[0]
    return SourceRef(SOURCE_OPTIONS[key], _parse_text(key, options[key].strip()))


def _source_option(source: SourceRef) -> str:
    key = next(k for k, kind in SOURCE_OPTIONS.items() if kind == source.kind)
    return f"option {key}"


def _refuse_beside_adoption(options, adopt_key, noun, its_own):
    """An adopted volume or share is taken as it is: no other option may come with it."""
    extra = sorted(k for k in options if k != adopt_key)
    if extra:
        raise InvalidInput(
            f"option {adopt_key} adopts an existing {noun} as it is; drop {', '.join(extra)} "
            f"(its {its_own} are the {noun}'s own)"
        )


def _refuse_unknown(options, known, what):
    unknown = sorted(_shorten(str(k)) for k in options if k not in known)
    if unknown:
        raise InvalidInput(
            f"unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)} for {what}; known options: "
            f"{BACKEND_OPTION}, {', '.join(known)}"
        )


def _parse_size(raw, limits: VolumeLimits) -> int:
    allowed = f"a whole number of GiB from {MIN_SIZE_GB} to {limits.max_size_gb}"
    if raw is None:
        return limits.default_size_gb
    text = raw.strip()
    if not text.isdigit() or not text.isascii():
        raise InvalidInput(f"option size={_shorten(raw)!r} is not a size; allowed: {allowed}")
    # int() of thousands of digits raises ValueError; such a number is out of range anyway.
    if len(text.lstrip("0")) > _MAX_SIZE_DIGITS:
        raise InvalidInput(f"option size={_shorten(raw)!r} is out of range; allowed: {allowed}")
    size = int(text)
    if not MIN_SIZE_GB <= size <= limits.max_size_gb:
        raise InvalidInput(f"option size={_shorten(raw)!r} is out of range; allowed: {allowed}")
    return size


def _parse_fstype(raw, limits: VolumeLimits) -> str:
    if raw is None:
        return limits.default_fstype
    if raw not in limits.allowed_fstypes:
        raise InvalidInput(
            f"option fstype={_shorten(raw)!r} is not supported; allowed: {', '.join(limits.allowed_fstypes)}"
        )
    return raw


def _parse_volume_id(raw):
    if raw is None:
        return None
    try:
        # Cinder's ids are UUIDs; anything else could only ever be "not found".
        return str(uuid.UUID(raw.strip()))
    except ValueError:
        raise InvalidInput(
            f"option volume_id={_shorten(raw)!r} is not a Cinder volume id; allowed: a UUID "
            "(`openstack volume list` shows them)"
        ) from None


def _parse_proto(raw, default) -> str:
    if raw is None:
        return default
    proto = raw.strip().upper()
    if proto not in SHARE_PROTOCOLS:
        raise InvalidInput(
            f"option proto={_shorten(raw)!r} is not supported; allowed: "
            f"{', '.join(p.lower() for p in SHARE_PROTOCOLS)}"
        )
    return proto


def _parse_text(key, raw):
    if raw is None:
        return None
    if not raw or len(raw) > _MAX_TEXT_OPTION or not raw.isprintable():
        raise InvalidInput(
            f"option {key}={_shorten(raw)!r} is not allowed; allowed: 1 to {_MAX_TEXT_OPTION} "
            "printable characters"
        )
    return raw


def _shorten(text, limit=40):
    """What a refusal quotes of a caller's value: enough to recognise it, never megabytes."""
    if isinstance(text, str) and len(text) > limit:
        return text[:limit] + "..."
    return text
