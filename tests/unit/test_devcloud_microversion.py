"""Cinder's microversion rules as devcloud applies them."""

import pytest

from storage_core.devcloud import microversion as mv
from storage_core.devcloud.microversion import APIVersion, VersionError, negotiate


@pytest.mark.parametrize("headers, expected", [
    ({}, "3.0"),
    ({"OpenStack-API-Version": "volume 3.27"}, "3.27"),
    ({"openstack-api-version": "volume 3.44"}, "3.44"),
    ({"OpenStack-API-Version": "volume latest"}, "3.71"),
    ({"OpenStack-API-Version": "compute 2.60, volume 3.54"}, "3.54"),
    ({"OpenStack-API-Version": "compute 2.60"}, "3.0"),
    ({"X-OpenStack-Volume-API-Version": "3.33"}, "3.33"),
    ({"OpenStack-API-Version": "volume 3.71"}, "3.71"),
])
def test_negotiate(headers, expected):
    assert str(negotiate(headers)) == expected


@pytest.mark.parametrize("value, status", [
    ("volume 3.72", 406),
    ("volume 2.0", 406),
    ("volume 4.0", 406),
    ("volume 3", 400),
    ("volume 3.05", 400),
    ("volume abc", 400),
])
def test_refused_versions(value, status):
    with pytest.raises(VersionError) as err:
        negotiate({"OpenStack-API-Version": value})
    assert err.value.status == status


def test_406_message_is_cinders():
    with pytest.raises(VersionError) as err:
        negotiate({"OpenStack-API-Version": "volume 3.99"})
    assert err.value.message == (
        "Version 3.99 is not supported by the API. Minimum is 3.0 and maximum is 3.71.")


def test_ordering_is_numeric():
    assert APIVersion.parse("3.9") < APIVersion.parse("3.27") < APIVersion.parse("3.100")
    assert mv.NEW_ATTACH == APIVersion(3, 27)
    assert mv.NEW_ATTACH_COMPLETION == APIVersion(3, 44)


def test_response_headers():
    assert mv.response_headers(APIVersion(3, 27)) == {
        "OpenStack-API-Version": "volume 3.27", "Vary": "OpenStack-API-Version"}
