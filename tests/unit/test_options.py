import pytest

from storage_core.config import VolumeLimits
from storage_core.errors import InvalidInput
from storage_core.names import validate_volume_name
from storage_core.options import parse_create_options

LIMITS = VolumeLimits(default_size_gb=1, max_size_gb=100)


def test_defaults_apply_when_no_options():
    spec = parse_create_options("v1", None, LIMITS)
    assert (spec.size_gb, spec.fstype, spec.volume_type, spec.availability_zone) == (1, "ext4", None, None)


def test_all_known_options_are_used():
    spec = parse_create_options(
        "v1", {"size": "5", "fstype": "xfs", "type": "fast", "availability_zone": "az1"}, LIMITS
    )
    assert (spec.size_gb, spec.fstype, spec.volume_type, spec.availability_zone) == (5, "xfs", "fast", "az1")


@pytest.mark.parametrize("size", ["abc", "-1", "0", "101", "1.5", "", " ", "١"])
def test_bad_sizes_are_refused_with_the_allowed_range(size):
    with pytest.raises(InvalidInput) as err:
        parse_create_options("v1", {"size": size}, LIMITS)
    assert "size=" in str(err.value) and "from 1 to 100" in str(err.value)


def test_unknown_option_lists_known_ones():
    with pytest.raises(InvalidInput) as err:
        parse_create_options("v1", {"sise": "1"}, LIMITS)
    message = str(err.value)
    assert "'sise'" in message
    for known in ("size", "type", "availability_zone", "fstype"):
        assert known in message


def test_fstype_outside_allowed_set_is_refused():
    with pytest.raises(InvalidInput) as err:
        parse_create_options("v1", {"fstype": "btrfs"}, LIMITS)
    assert "btrfs" in str(err.value) and "ext4, xfs" in str(err.value)


def test_non_string_option_values_are_refused():
    with pytest.raises(InvalidInput):
        parse_create_options("v1", {"size": 1}, LIMITS)


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", "x\x00y", "v" * 256, "", "-lead", ".hidden", "sp ace"])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidInput):
        validate_volume_name(name)


@pytest.mark.parametrize("name", ["v", "v1", "my_vol-2.data", "A" * 255])
def test_good_names_pass(name):
    assert validate_volume_name(name) == name
