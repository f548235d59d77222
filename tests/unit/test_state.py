from storage_core.state import HostVolume, Phase, StateStore


def test_mounts_are_a_multiset_per_caller(tmp_path):
    state = StateStore(str(tmp_path / "s.db"))
    assert state.add_mount("v", "a") == 1
    assert state.add_mount("v", "a") == 2  # the same caller id twice
    assert state.add_mount("v", "b") == 3
    assert state.remove_mount("v", "a") == 2
    assert state.mount_callers("v") == {"a": 1, "b": 1}
    assert state.remove_mount("v", "zzz") is None
    assert state.remove_mount("v", "a") == 1
    assert state.remove_mount("v", "b") == 0
    assert state.mount_count("v") == 0


def test_state_survives_reopening(tmp_path):
    path = str(tmp_path / "s.db")
    state = StateStore(path)
    state.add_mount("v", "a")
    state.save_host_volume(
        HostVolume("v", "vol-1", Phase.MOUNTED, "att-1", {"driver_volume_type": "local", "data": {}}, "/dev/loop3", "/m/v")
    )
    state.close()
    again = StateStore(path)
    assert again.mount_count("v") == 1
    hv = again.host_volume("v")
    assert hv.phase == Phase.MOUNTED and hv.device_path == "/dev/loop3"
    assert hv.host_attachment.attachment_id == "att-1"
    again.forget_host_volume("v")
    assert again.host_volume("v") is None
