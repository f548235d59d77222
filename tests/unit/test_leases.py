"""Leases and the preemption rule, on a fake clock: who may take a volume over,
when a lease has run out, and what the refusals say."""

import pytest

from storage_core.errors import Conflict, InvalidInput
from storage_core.leases import Lease, Leases, renewal_interval
from storage_core.models import CloudVolume
from storage_core.config import VolumeLimits
from storage_core.options import parse_volume_options


def volume(**metadata):
    return CloudVolume(id="v1", name="data", size_gb=1, status="in-use", created_at=None,
                       metadata={"volume_from": "fuxi", **metadata})


def test_a_lease_is_the_holder_and_its_expiry():
    leases = Leases("host-b", seconds=60, clock=lambda: 1000.0)
    assert leases.fresh() == "host-b 1060" and renewal_interval(60) == 20
    assert Lease.of(volume(fuxi_lease="host a 1060")) == Lease("host a", 1060.0)
    assert Lease.of(volume(fuxi_lease="garbage")) is None and Lease.of(volume()) is None


def test_preemption_is_opt_in_per_volume_or_for_all():
    assert not Leases("b").may_preempt(volume())
    assert Leases("b").may_preempt(volume(fuxi_preempt="true"))
    assert Leases("b", preempt=True).may_preempt(volume())


@pytest.mark.parametrize("now,outcome", [
    (1059.0, "whose lease on it runs 31 s more"),  # not expired
    (1089.0, "whose lease on it runs 1 s more"),   # expired, but within half a lease (clock skew)
    (1091.0, None),                                 # run out
])
def test_a_lease_runs_out_half_a_lease_after_its_expiry(now, outcome):
    leases = Leases("host-b", seconds=60, clock=lambda: now)
    vol = volume(fuxi_lease="host-a 1060")
    if outcome is None:
        assert leases.run_out(vol, "host-a") == Lease("host-a", 1060.0)
    else:
        with pytest.raises(Conflict, match=outcome):
            leases.run_out(vol, "host-a")


def test_a_holder_without_a_lease_is_never_taken_over():
    with pytest.raises(Conflict, match="attached to host-a, which keeps no fuxi lease on it"):
        Leases("host-b", clock=lambda: 10**9).run_out(volume(), "host-a")


@pytest.mark.parametrize("raw,wanted", [("true", True), (" FALSE ", False), (None, False)])
def test_the_preempt_option(raw, wanted):
    options = {} if raw is None else {"preempt": raw}
    assert parse_volume_options("n", options, VolumeLimits()).preempt is wanted


def test_a_bad_preempt_option_is_refused():
    with pytest.raises(InvalidInput, match=r"option preempt='yes' is not allowed; allowed: true or false"):
        parse_volume_options("n", {"preempt": "yes"}, VolumeLimits())
