import pytest

from storage_core.attach.brick import _split
from storage_core.errors import AttachError


def test_flat_connection_info_of_the_attachments_api():
    protocol, data = _split({"driver_volume_type": "local", "device_path": "/dev/loop3", "attachment_id": "a"})
    assert protocol == "local" and data == {"device_path": "/dev/loop3", "attachment_id": "a"}


def test_nested_connection_info_of_initialize_connection():
    protocol, data = _split({"driver_volume_type": "iscsi", "data": {"target_iqn": "iqn.x", "target_lun": 1}})
    assert protocol == "iscsi" and data == {"target_iqn": "iqn.x", "target_lun": 1}


@pytest.mark.parametrize("info", [None, {}, {"device_path": "/dev/loop3"}])
def test_connection_info_without_a_protocol_is_refused(info):
    with pytest.raises(AttachError, match="driver_volume_type"):
        _split(info)
