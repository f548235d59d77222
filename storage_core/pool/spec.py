"""What a pool holds, and the cloud tags that mark its volumes."""

from dataclasses import dataclass

from storage_core.errors import ConfigError
from storage_core.models import POOL_KEY, VolumeSpec

# Metadata of a pool volume besides POOL_KEY (the pool's key): whether it is
# still being filled, and which host made it (the owner of tier 3/4 volumes).
POOL_STATE_KEY = "fuxi_pool_state"
POOL_HOST_KEY = "fuxi_pool_host"
POOL_KEYS = (POOL_KEY, POOL_STATE_KEY, POOL_HOST_KEY)
FILLING, READY = "filling", "ready"
NAME_PREFIX = "fuxi-pool-"
TIERS = (1, 2, 3, 4)


@dataclass(frozen=True)
class PoolSpec:
    name: str
    size_gb: int
    fstype: str
    volume_type: str | None = None
    availability_zone: str | None = None
    tier: int = 4
    min_ready: int = 2
    max_volumes: int = 4
    batch: int = 2
    refill_interval: float = 10.0

    def __post_init__(self):
        problems = []
        if self.tier not in TIERS:
            problems.append(f"tier = {self.tier} (allowed: 1 created, 2 formatted, 3 attached, 4 mounted)")
        if not 0 <= self.min_ready <= self.max_volumes:
            problems.append(f"min_ready = {self.min_ready} and max = {self.max_volumes} (need 0 <= min_ready <= max)")
        if self.batch < 1:
            problems.append(f"batch = {self.batch} (need 1 or more)")
        if self.refill_interval <= 0:
            problems.append(f"refill_interval = {self.refill_interval:g} (need more than 0 s)")
        if problems:
            raise ConfigError(f"pool {self.name!r}: " + "; ".join(problems))

    @property
    def key(self) -> str:
        """The pool's identity in the cloud: what its volumes are, not what it is called."""
        return (f"{self.size_gb}g:{self.fstype}:{self.volume_type or '-'}:"
                f"{self.availability_zone or '-'}:t{self.tier}")

    @property
    def shared(self) -> bool:
        """Tier 1 and 2 volumes are attached nowhere: any host may claim them."""
        return self.tier <= 2

    def serves(self, spec: VolumeSpec) -> bool:
        return (spec.size_gb, spec.fstype, spec.volume_type, spec.availability_zone) == (
            self.size_gb, self.fstype, self.volume_type, self.availability_zone)
