"""Which volume names storage_core accepts.

Names become cloud names and directory names under the mount root, so
anything that could escape that directory or confuse a command is refused.
"""

import re

from storage_core.errors import InvalidInput

MAX_NAME_LENGTH = 255
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
ALLOWED_NAMES = (
    f"1 to {MAX_NAME_LENGTH} characters from letters, digits, '_', '.' and '-', "
    "starting with a letter or digit, without '..'"
)


def validate_volume_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"a volume name is required; allowed: {ALLOWED_NAMES}")
    shown = name if len(name) <= 40 else name[:40] + "..."
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"volume name {shown!r} is {len(name)} characters long; allowed: {ALLOWED_NAMES}"
        )
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidInput(f"volume name {shown!r} is not allowed; allowed: {ALLOWED_NAMES}")
    return name
