"""Leases: how a host says, in the cloud, that it still holds the volumes it
mounted, so that another host may take over (preempt) a volume only from a
holder that stopped saying so.

A host renews the lease of each volume it has mounted every third of the lease
time: the volume's metadata holds LEASE_KEY = "<host> <expiry, Unix time>".
A lease is run out only half a lease time after its expiry, for clocks that
disagree between hosts. Preemption is opt-in (per volume with -o preempt=true,
or for every volume with `preempt` in the config) and applies only to a holder
whose lease ran out: a live holder keeps its volume, and so does one that never
wrote a lease (an older fuxi, or something else), whose liveness fuxi cannot know.
"""

import logging
import time
from dataclasses import dataclass

from storage_core.errors import Conflict
from storage_core.models import LEASE_KEY, PREEMPT_KEY, CloudVolume

LOG = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 60.0


def renewal_interval(lease_seconds) -> float:
    """How often a host renews its leases: three times a lease, so one or two
    failed renewals (a slow cloud) do not let a lease run out."""
    return lease_seconds / 3


@dataclass(frozen=True)
class Lease:
    holder: str
    expires: float

    def text(self) -> str:
        return f"{self.holder} {int(self.expires)}"

    @classmethod
    def of(cls, vol: CloudVolume) -> "Lease | None":
        holder, _, expires = (vol.metadata.get(LEASE_KEY) or "").rpartition(" ")
        try:
            return cls(holder, float(expires)) if holder else None
        except ValueError:
            return None


class Leases:
    def __init__(self, holder, seconds=DEFAULT_LEASE_SECONDS, preempt=False, clock=time.time):
        """`holder`: this host's name; `preempt`: every volume may be taken over
        from a holder whose lease ran out (else only volumes tagged for it)."""
        self.holder = holder
        self.seconds = seconds
        self.preempt = preempt
        self._clock = clock

    def fresh(self) -> str:
        """The metadata value of this host's lease, from now."""
        return Lease(self.holder, self._clock() + self.seconds).text()

    def may_preempt(self, vol: CloudVolume) -> bool:
        return self.preempt or vol.metadata.get(PREEMPT_KEY) == "true"

    def run_out(self, vol: CloudVolume, held_by) -> Lease:
        """The holder's lease, if it ran out; else Conflict saying why the volume
        stays where it is."""
        lease = Lease.of(vol)
        if lease is None:
            raise Conflict(
                f"volume {vol.name!r} is attached to {held_by}, which keeps no fuxi lease on it (an older "
                "fuxi, or not fuxi): fuxi takes a volume over only from a holder whose lease ran out; detach it "
                "there"
            )
        left = lease.expires + self.seconds / 2 - self._clock()
        if left > 0:
            raise Conflict(
                f"volume {vol.name!r} is attached to {lease.holder}, whose lease on it runs {left:.0f} s more: "
                f"that host is alive (or stopped less than {self.seconds * 1.5:.0f} s ago); unmount it there, "
                "or try again once its lease ran out"
            )
        return lease
