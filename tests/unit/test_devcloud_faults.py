"""Fault matching and acting of devcloud."""

import time

import pytest

from storage_core.devcloud.faults import OPERATIONS, FaultInjector, apply_fault
from storage_core.devcloud.web import ResetConnection, cinder_error, keystone_error


def test_fault_fires_times_then_goes():
    faults = FaultInjector()
    faults.add("volume.create", status=500, times=2)
    assert faults.take("volume.get") is None
    assert faults.take("volume.create").status == 500
    assert faults.take("volume.create").status == 500
    assert faults.take("volume.create") is None
    assert faults.list() == []


def test_first_match_wins_and_unlimited():
    faults = FaultInjector()
    faults.add("volume.get", status=503, times=None)
    faults.add("volume.get", status=500)
    for _ in range(5):
        assert faults.take("volume.get").status == 503
    faults.clear()
    assert faults.take("volume.get") is None


@pytest.mark.parametrize("kwargs", [
    {"operation": "volume.explode"},
    {"operation": "volume.get", "status": 42},
    {"operation": "volume.get", "times": 0},
    {"operation": "volume.get", "delay": -1},
    {"operation": "volume.get", "status": None},
])
def test_bad_faults_refused(kwargs):
    with pytest.raises(ValueError):
        FaultInjector().add(**kwargs)


def test_add_many_validates_everything_first():
    faults = FaultInjector()
    with pytest.raises(ValueError):
        faults.add_many([{"operation": "volume.get"}, {"operation": "nope"}])
    assert faults.list() == []
    with pytest.raises(ValueError):
        faults.add_many({"operation": "volume.get", "colour": "red"})
    added = faults.add_many({"operation": "attachment.delete", "status": 409})
    assert [f.operation for f in added] == ["attachment.delete"]


def test_all_documented_operations_exist():
    for name in ("auth.token", "volume.create", "volume.get", "volume.list", "volume.delete",
                 "volume.metadata", "attachment.create", "attachment.get", "attachment.list",
                 "attachment.complete", "attachment.delete"):
        assert name in OPERATIONS


def test_apply_fault_shapes():
    faults = FaultInjector()
    assert apply_fault(faults, "volume.get", cinder_error) is None
    assert apply_fault(None, "volume.get", cinder_error) is None

    faults.add("volume.get", status=500)
    resp = apply_fault(faults, "volume.get", cinder_error)
    assert resp.status == 500
    assert resp.body["computeFault"]["code"] == 500

    faults.add("volume.get", status=404)
    assert "itemNotFound" in apply_fault(faults, "volume.get", cinder_error).body

    faults.add("auth.token", status=401)
    assert apply_fault(faults, "auth.token", keystone_error).body["error"]["title"] == \
        "Unauthorized"

    faults.add("volume.list", status=418, body={"teapot": True})
    resp = apply_fault(faults, "volume.list", cinder_error)
    assert (resp.status, resp.body) == (418, {"teapot": True})

    faults.add("volume.delete", reset_connection=True)
    with pytest.raises(ResetConnection):
        apply_fault(faults, "volume.delete", cinder_error)


def test_delay_only_fault_lets_the_call_through():
    faults = FaultInjector()
    faults.add("volume.get", status=None, delay=0.2)
    started = time.monotonic()
    assert apply_fault(faults, "volume.get", cinder_error) is None
    assert time.monotonic() - started >= 0.2
