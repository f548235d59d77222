"""CSI capacity ranges (bytes) as the whole GiB Cinder and Manila allocate."""

GIB = 1024**3


class OutOfRange(Exception):
    pass


def size_gb_for(capacity_range, default_gb) -> int | None:
    """GiB to ask for: the required bytes rounded up, else the default if the limit
    allows it (None: the default is within the limit, let the backend choose,
    e.g. the size of the snapshot a volume comes from)."""
    required, limit = capacity_range.required_bytes, capacity_range.limit_bytes
    if required < 0 or limit < 0:
        raise OutOfRange(f"capacity_range ({required}, {limit}) has a negative size")
    if limit and required > limit:
        raise OutOfRange(f"capacity_range: required_bytes {required} is more than limit_bytes {limit}")
    if required:
        size = -(-required // GIB)
    elif limit and default_gb * GIB > limit:
        size = limit // GIB
    else:
        return None
    if size < 1 or (limit and size * GIB > limit):
        raise OutOfRange(f"capacity_range ({required}, {limit} bytes) holds no whole GiB; volumes are "
                         "allocated in GiB")
    return size


def check_within(size_gb, capacity_range) -> None:
    """A volume of `size_gb` must satisfy the range (an existing one, a source's size)."""
    limit = capacity_range.limit_bytes
    if limit and size_gb * GIB > limit:
        raise OutOfRange(f"the volume is {size_gb} GiB, more than limit_bytes {limit}")
