"""The `[pool:NAME]` sections of fuxi.conf: one warm pool each.

    [pool:small]
    size_gb = 1
    fstype = ext4
    tier = 4          # 1 created, 2 formatted, 3 attached here, 4 mounted here
    min_ready = 2
    max = 4
    batch = 2
    refill_interval = 10
"""

from storage_core.config import SUPPORTED_FSTYPES
from storage_core.errors import ConfigError
from storage_core.pool.spec import PoolSpec

SECTION_PREFIX = "pool:"
# key in the section -> (PoolSpec field, type, default)
POOL_OPTIONS = {
    "size_gb": ("size_gb", int, 1),
    "fstype": ("fstype", str, "ext4"),
    "volume_type": ("volume_type", str, ""),
    "availability_zone": ("availability_zone", str, ""),
    "tier": ("tier", int, 4),
    "min_ready": ("min_ready", int, 2),
    "max": ("max_volumes", int, 4),
    "batch": ("batch", int, 2),
    "refill_interval": ("refill_interval", float, 10.0),
}


class PoolSettingsError(Exception):
    pass


def read_pools(parser, path) -> tuple[PoolSpec, ...]:
    pools = []
    for section in parser.sections():
        if not section.startswith(SECTION_PREFIX):
            continue
        name = section[len(SECTION_PREFIX):].strip()
        where = f"config file {path}, [{section}]"
        if not name:
            raise PoolSettingsError(f"{where}: a pool needs a name, as in [pool:small]")
        values = {field: default for field, _kind, default in POOL_OPTIONS.values()}
        for key, raw in parser.items(section):
            if key not in POOL_OPTIONS:
                raise PoolSettingsError(f"{where}: unknown option {key!r}; known: {', '.join(POOL_OPTIONS)}")
            field, kind, _default = POOL_OPTIONS[key]
            try:
                values[field] = kind(raw)
            except ValueError:
                raise PoolSettingsError(f"{where}: {key} = {raw!r} is not a valid {kind.__name__}") from None
        if values["fstype"] not in SUPPORTED_FSTYPES:
            raise PoolSettingsError(f"{where}: fstype {values['fstype']!r}; allowed: {', '.join(SUPPORTED_FSTYPES)}")
        values["volume_type"] = values["volume_type"] or None
        values["availability_zone"] = values["availability_zone"] or None
        try:
            pools.append(PoolSpec(name=name, **values))
        except ConfigError as exc:
            raise PoolSettingsError(f"{where}: {exc}") from None
    keys = [p.key for p in pools]
    if len(set(keys)) != len(keys):
        raise PoolSettingsError(f"config file {path}: two pools hold the same volumes (size, fstype, type, "
                                "zone and tier); merge them")
    return tuple(pools)
