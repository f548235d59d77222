import pytest

from storage_core.config import ShareConfig, VolumeLimits
from storage_core.errors import InvalidInput
from storage_core.names import validate_volume_name
from storage_core.options import parse_share_options, parse_volume_options, split_backend

LIMITS = VolumeLimits(default_size_gb=1, max_size_gb=100)
SHARES = ShareConfig(default_proto="NFS", share_type="gold")
BACKENDS = ("cinder", "manila")


def spec_of(options, name="v1"):
    """Split off the backend as the service does, then parse that backend's options."""
    backend, rest = split_backend(name, options, "cinder", BACKENDS)
    if backend == "cinder":
        return parse_volume_options(name, rest, LIMITS)
    return parse_share_options(name, rest, LIMITS, SHARES)


def test_defaults_apply_when_no_options():
    spec = spec_of(None)
    assert (spec.size_gb, spec.fstype, spec.volume_type, spec.availability_zone) == (1, "ext4", None, None)


def test_all_known_options_are_used():
    spec = spec_of({"size": "5", "fstype": "xfs", "type": "fast", "availability_zone": "az1"})
    assert (spec.size_gb, spec.fstype, spec.volume_type, spec.availability_zone) == (5, "xfs", "fast", "az1")


@pytest.mark.parametrize("size", ["abc", "-1", "0", "101", "1.5", "", " ", "١"])
def test_bad_sizes_are_refused_with_the_allowed_range(size):
    with pytest.raises(InvalidInput) as err:
        spec_of({"size": size})
    assert "size=" in str(err.value) and "from 1 to 100" in str(err.value)


def test_unknown_option_lists_known_ones():
    with pytest.raises(InvalidInput) as err:
        spec_of({"sise": "1"})
    message = str(err.value)
    assert "'sise'" in message
    for known in ("size", "type", "availability_zone", "fstype"):
        assert known in message


def test_fstype_outside_allowed_set_is_refused():
    with pytest.raises(InvalidInput) as err:
        spec_of({"fstype": "btrfs"})
    assert "btrfs" in str(err.value) and "ext4, xfs" in str(err.value)


def test_non_string_option_values_are_refused():
    with pytest.raises(InvalidInput):
        spec_of({"size": 1})


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", "x\x00y", "v" * 256, "", "-lead", ".hidden", "sp ace"])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidInput):
        validate_volume_name(name)


@pytest.mark.parametrize("name", ["v", "v1", "my_vol-2.data", "A" * 255])
def test_good_names_pass(name):
    assert validate_volume_name(name) == name


def test_share_options_with_defaults_from_config():
    spec = spec_of({"backend": "manila"})
    assert (spec.proto, spec.size_gb, spec.share_type, spec.adopt_share_id) == ("NFS", 1, "gold", None)
    spec = spec_of({"backend": "Manila", "proto": "cephfs", "size": "3", "share_type": "fast",
                    "share_network": "net1", "availability_zone": "az2"})
    assert (spec.proto, spec.size_gb, spec.share_type, spec.share_network, spec.availability_zone) == (
        "CEPHFS", 3, "fast", "net1", "az2")


def test_unknown_backend_lists_the_enabled_ones():
    with pytest.raises(InvalidInput, match=r"backend='swift'.*allowed: cinder, manila"):
        spec_of({"backend": "swift"})


def test_options_of_the_other_backend_are_refused_by_name():
    with pytest.raises(InvalidInput, match=r"'fstype' for a Manila share; known options: backend, size, proto"):
        spec_of({"backend": "manila", "fstype": "xfs"})
    with pytest.raises(InvalidInput, match=r"'proto' for a Cinder volume"):
        spec_of({"proto": "nfs"})


@pytest.mark.parametrize("proto", ["cifs", "hdfs", "", "nfs4"])
def test_share_protocols_outside_the_mountable_ones_are_refused(proto):
    with pytest.raises(InvalidInput, match="allowed: nfs, cephfs, glusterfs"):
        spec_of({"backend": "manila", "proto": proto})


def test_adopting_a_share_takes_nothing_but_its_id():
    spec = spec_of({"backend": "manila", "share_id": "0f6e"})
    assert spec.adopt_share_id == "0f6e"
    with pytest.raises(InvalidInput, match="drop proto, size"):
        spec_of({"backend": "manila", "share_id": "0f6e", "size": "2", "proto": "nfs"})
