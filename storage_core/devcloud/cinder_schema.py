"""Cinder's request checks, shared by its faces (cinder.py, cinder_snapshots.py,
cinder_backups.py): the JSON-schema rules of request bodies, in jsonschema's
order and with its messages, so that a client sees Cinder's own 400s.
"""

import re
import uuid

from storage_core.devcloud.backend import Invalid

#: Cinder's parameter_types.extra_specs: the keys metadata may have.
METADATA_KEY_PATTERN = "^[a-zA-Z0-9-_:. /]{1,255}$"
#: Cinder's parameter_types.boolean: what a boolean field may be, and what is true.
_BOOLEAN_ENUM = [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                 "y", "t", False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO",
                 "No", "no", "n", "f"]
_TRUE_STRINGS = frozenset(v.lower() for v in _BOOLEAN_ENUM[1:13])


def invalid_field(field, value, reason):
    # Cinder's JSON-schema validation message.
    return Invalid(f"Invalid input for field/attribute {field}. Value: {value}. {reason}")


def unexpected(keys) -> str:
    listed = ", ".join(repr(k) for k in keys)
    return f"Additional properties are not allowed ({listed} {'was' if len(keys) == 1 else 'were'} unexpected)"


def is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


def check_string(max_length=255):
    """Cinder's string-or-null field of at most ``max_length`` characters."""
    def check(value):
        if value is not None and not isinstance(value, str):
            return f"{value!r} is not of type 'string', 'null'"
        if value is not None and len(value) > max_length:
            return f"{value!r} is too long"
        return None
    return check


def check_uuid(value):
    """Cinder's parameter_types.uuid."""
    if not isinstance(value, str):
        return f"{value!r} is not of type 'string'"
    return None if is_uuid(value) else f"{value!r} is not a 'uuid'"


def check_uuid_or_null(value):
    """Cinder's uuid_allow_null / optional_uuid."""
    if value is None or (isinstance(value, str) and is_uuid(value)):
        return None
    return f"{value!r} is not valid under any of the given schemas"


def check_boolean(value):
    """Cinder's parameter_types.boolean."""
    if not isinstance(value, (bool, str)):
        return f"{value!r} is not of type 'boolean', 'string'"
    if not any(value is v or (isinstance(v, str) and value == v) for v in _BOOLEAN_ENUM):
        return f"{value!r} is not one of {_BOOLEAN_ENUM!r}"
    return None


def as_boolean(value) -> bool:
    """A value check_boolean accepted, as oslo's bool_from_string reads it."""
    return value if isinstance(value, bool) else value.lower() in _TRUE_STRINGS


def validated_object(body, key, fields, required=(), nullable=False) -> dict:
    """``body[key]`` checked as Cinder's JSON schema of ``{key: {...}}`` with
    ``additionalProperties: False`` checks it, in jsonschema's order: each
    field present (``fields``: name -> check(value) giving the error or None,
    or raising itself), the required ones, unexpected ones; then the body's
    own. ``nullable``: ``{key: null}`` passes, as ``{}``."""
    if not isinstance(body, dict):
        raise Invalid(f"{body!r} is not of type 'object'")
    if key not in body:
        raise Invalid(f"'{key}' is a required property")
    inner = body[key]
    if inner is None and nullable:
        inner = {}
    if not isinstance(inner, dict):
        kinds = "'object', 'null'" if nullable else "'object'"
        raise invalid_field(key, inner, f"{inner!r} is not of type {kinds}")
    for name, check in fields.items():
        if name in inner:
            problem = check(inner[name])
            if problem:
                raise invalid_field(name, inner[name], problem)
    for name in required:
        if name not in inner:
            raise invalid_field(key, inner, f"'{name}' is a required property")
    extra = sorted(k for k in inner if k not in fields)
    if extra:
        raise invalid_field(key, inner, unexpected(extra))
    extra = sorted(k for k in body if k != key)
    if extra:
        raise Invalid(unexpected(extra))
    return inner


def stripped(value):
    """Cinder strips the names and descriptions it is given."""
    return value.strip() if isinstance(value, str) else value


def validated_metadata(value, allow_null=False, field="metadata", pattern=METADATA_KEY_PATTERN):
    """Validate as Cinder's extra_specs schema does: values first (in the
    body's order), then every key its pattern refuses, sorted."""
    if value is None and allow_null:
        return None
    if not isinstance(value, dict):
        types = "'object', 'null'" if allow_null else "'object'"
        raise invalid_field(field, value, f"{value!r} is not of type {types}")
    refused = []
    for key, item in value.items():
        if not re.search(pattern, key):
            refused.append(key)
        elif not isinstance(item, str):
            raise invalid_field(key, item, f"{item!r} is not of type 'string'")
        elif len(item) > 255:
            raise invalid_field(key, item, f"{item!r} is too long")
    if refused:
        verb = "does" if len(refused) == 1 else "do"
        joined = ", ".join(repr(k) for k in sorted(refused))
        raise invalid_field(field, value, f"{joined} {verb} not match any of the regexes: "
                                          f"{pattern!r}")
    return value


def requested_status_reset(body, statuses, noun, shown) -> str:
    """The status (lower-cased) an admin's ``POST {collection}/{id}/action``
    asks a snapshot or a backup to be reset to: the body must hold the one
    action ``os-reset_status``, and a status of ``statuses`` (else Cinder's
    ``{noun} status`` format error, listing ``shown`` as its controller does).
    """
    if not isinstance(body, dict) or len(body) != 1:
        raise Invalid("Malformed request body")
    action, args = next(iter(body.items()))
    if action != "os-reset_status":
        raise Invalid(f"There is no such action: {action}")
    status = args.get("status") if isinstance(args, dict) else None
    if not isinstance(status, str) or status.lower() not in statuses:
        raise invalid_field("status", status, f"{noun} status: {status} is invalid, "
                                              f"valid statuses are: {shown}.")
    return status.lower()
