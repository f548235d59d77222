"""Times as OpenStack services write them."""

from datetime import datetime, timezone


def parse_cloud_time(value) -> datetime | None:
    """Cinder/Manila timestamps (ISO 8601, UTC, usually without an offset) as aware datetimes."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
