"""Get, Path and List answer from the local catalog; the cloud refreshes it."""

import time

from storage_core.fakes import fake_volume_service


def cloud_calls(fakes):
    return [c for c in fakes.cinder.calls + fakes.manila.calls if c[0] in ("find", "get", "list_owned")]


def test_get_path_and_list_of_known_volumes_ask_the_cloud_nothing(tmp_path):
    fakes = fake_volume_service(str(tmp_path))
    fakes.service.create("v1", {})
    fakes.service.create("s1", {"backend": "manila"})
    fakes.service.list()  # the first List loads the catalog
    fakes.cinder.calls.clear()
    fakes.manila.calls.clear()
    for _ in range(3):
        assert fakes.service.get("v1").status["cloud_status"] == "available"
        assert fakes.service.get("s1").status["backend"] == "manila"
        assert fakes.service.path("v1") is None
        assert sorted(i.name for i in fakes.service.list()) == ["s1", "v1"]
    assert cloud_calls(fakes) == []


def test_a_refresh_brings_in_volumes_made_elsewhere_and_drops_removed_ones(tmp_path):
    fakes = fake_volume_service(str(tmp_path))
    fakes.service.create("mine", {})
    elsewhere = fakes.cinder.add_volume("theirs")
    assert fakes.service.refresh_catalog()
    assert sorted(i.name for i in fakes.service.list()) == ["mine", "theirs"]
    fakes.cinder.delete(elsewhere)
    fakes.service.refresh_catalog()
    assert [i.name for i in fakes.service.list()] == ["mine"]


def test_an_unknown_name_is_looked_up_in_the_cloud(tmp_path):
    fakes = fake_volume_service(str(tmp_path))
    fakes.cinder.add_volume("new-elsewhere")
    assert fakes.service.get("new-elsewhere").name == "new-elsewhere"


def test_a_refresh_that_overlapped_a_change_is_dropped(tmp_path):
    fakes = fake_volume_service(str(tmp_path))
    fakes.service.create("gone-soon", {})
    listing = fakes.cinder.list_owned

    def list_then_remove():
        stale = listing()
        fakes.service.remove("gone-soon")  # a Remove while the list was on its way
        return stale

    fakes.cinder.list_owned = list_then_remove
    assert fakes.service.refresh_catalog() is False
    fakes.cinder.list_owned = listing
    assert [i.name for i in fakes.service.list()] == []


def test_the_background_refresh_keeps_the_catalog_fresh(tmp_path):
    fakes = fake_volume_service(str(tmp_path))
    fakes.service.list()
    fakes.cinder.add_volume("late")
    fakes.service.start_refreshing(0.02)
    try:
        deadline = time.monotonic() + 5
        while [i.name for i in fakes.service.list()] != ["late"]:
            assert time.monotonic() < deadline, "the refresh never brought the volume in"
            time.sleep(0.02)
    finally:
        fakes.service.stop_refreshing()


def test_list_mountpoints_matches_list(tmp_path):
    fakes = fake_volume_service(str(tmp_path))
    for name in ("a", "b", "c"):
        fakes.service.create(name, {})
    fakes.service.create("s", {"backend": "manila"})
    path = fakes.service.mount("b", "c1")
    fakes.service.mount("c", "c1")
    fakes.service.unmount("c", "c1")
    expected = [(i.name, i.mountpoint) for i in fakes.service.list()]
    assert fakes.service.list_mountpoints() == expected
    assert dict(expected) == {"a": None, "b": path, "c": None, "s": None}
