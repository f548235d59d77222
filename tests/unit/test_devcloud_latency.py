"""Latency profiles of devcloud."""

import pytest

from storage_core.devcloud.latency import LatencyProfile


def test_seed_profile_has_the_measured_figures():
    seed = LatencyProfile.named("seed")
    assert seed.create == 1.5
    assert seed.reserve == 0.2
    assert seed.initialize_connection == 0.7
    assert seed.attach == 0.7
    assert seed.delete == 0 and seed.detach == 0


def test_none_profile_is_all_zero():
    none = LatencyProfile.named("none")
    assert all(v == 0 for k, v in none.to_dict().items() if k != "name")
    assert LatencyProfile.coerce(None) == none


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown latency profile"):
        LatencyProfile.named("glacial")


def test_coerce_forms():
    assert LatencyProfile.coerce("seed") is LatencyProfile.named("seed")
    profile = LatencyProfile(create=2)
    assert LatencyProfile.coerce(profile) is profile
    custom = LatencyProfile.coerce({"profile": "seed", "create": 3})
    assert (custom.create, custom.attach, custom.name) == (3, 0.7, "custom")
    assert LatencyProfile.coerce({"profile": "seed"}).name == "seed"
    with pytest.raises(ValueError):
        LatencyProfile.coerce({"bogus": 1})
    with pytest.raises(TypeError):
        LatencyProfile.coerce(3)


def test_negative_or_non_numbers_refused():
    with pytest.raises(ValueError):
        LatencyProfile(create=-1)
    with pytest.raises(ValueError):
        LatencyProfile(attach="slow")
