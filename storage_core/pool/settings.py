"""The `[pool:NAME]` sections of a config file (fuxi.conf, fuxi-csi.conf): one warm pool each.

    [pool:small]
    size_gb = 1
    fstype = ext4
    tier = 4          # 1 created, 2 formatted, 3 attached here, 4 mounted here
    min_ready = 2
    max = 4
    batch = 2
    refill_interval = 10
"""

from dataclasses import dataclass

from storage_core.config import SUPPORTED_FSTYPES
from storage_core.errors import ConfigError
from storage_core.pool.spec import PoolSpec

SECTION_PREFIX = "pool:"


@dataclass(frozen=True)
class PoolOption:
    field: str  # the PoolSpec field it sets
    kind: type
    default: object
    help: str


# key in the section -> its PoolSpec field, type, default and meaning
POOL_OPTIONS = {
    "size_gb": PoolOption("size_gb", int, 1, "size in GiB of the pool's volumes (a Create "
                         "asking the same size, fstype, volume type and zone is served from the pool)"),
    "fstype": PoolOption("fstype", str, "ext4", "file system of the pool's volumes (tier 2 and up make it ahead)"),
    "volume_type": PoolOption("volume_type", str, "", "Cinder volume type of the pool's volumes (default: the cloud's)"),
    "availability_zone": PoolOption("availability_zone", str, "", "availability zone of the pool's volumes "
                                    "(default: the cloud's)"),
    "tier": PoolOption("tier", int, 4, "how far each volume is made ahead: 1 created, 2 also formatted, "
                       "3 also attached to this host, 4 also mounted here"),
    "min_ready": PoolOption("min_ready", int, 2, "the keeper refills when fewer volumes than this are ready"),
    "max": PoolOption("max_volumes", int, 4, "never more ready and filling volumes than this"),
    "batch": PoolOption("batch", int, 2, "volumes made side by side in one refill round"),
    "refill_interval": PoolOption("refill_interval", float, 10.0, "seconds between the keeper's checks of the level"),
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
        values = {option.field: option.default for option in POOL_OPTIONS.values()}
        for key, raw in parser.items(section):
            if key not in POOL_OPTIONS:
                raise PoolSettingsError(f"{where}: unknown option {key!r}; known: {', '.join(POOL_OPTIONS)}")
            option = POOL_OPTIONS[key]
            try:
                values[option.field] = option.kind(raw)
            except ValueError:
                raise PoolSettingsError(f"{where}: {key} = {raw!r} is not a valid {option.kind.__name__}") from None
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
