"""devcloud's SQLite store: round trips, atomic transactions, persistence."""

import pytest

from storage_core.devcloud.store import Store


@pytest.fixture
def path(tmp_path):
    return tmp_path / "devcloud.sqlite"


def test_round_trip_and_reopen(path):
    store = Store(path)
    doc = {"id": "v1", "name": "vol", "metadata": {"k": "v"}, "size": 1, "device": None}
    store.put("volume", doc)
    store.put("attachment", {"id": "a1", "volume_id": "v1"})
    store.set_setting("key", "secret")
    assert store.get("volume", "v1") == doc
    assert store.get("volume", "a1") is None  # kinds are separate
    store.close()

    reopened = Store(path)
    assert reopened.get("volume", "v1") == doc
    assert reopened.list("attachment") == [{"id": "a1", "volume_id": "v1"}]
    assert reopened.get_setting("key") == "secret"
    assert reopened.delete("volume", "v1") is True
    assert reopened.delete("volume", "v1") is False
    assert reopened.list("volume") == []
    reopened.close()


def test_put_replaces(path):
    store = Store(path)
    store.put("volume", {"id": "v1", "status": "creating"})
    store.put("volume", {"id": "v1", "status": "available"})
    assert store.list("volume") == [{"id": "v1", "status": "available"}]


def test_transaction_is_all_or_nothing(path):
    store = Store(path)
    store.put("volume", {"id": "v1", "status": "available"})
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put("volume", {"id": "v1", "status": "reserved"})
            store.put("attachment", {"id": "a1"})
            raise RuntimeError("crash in the middle")
    assert store.get("volume", "v1")["status"] == "available"
    assert store.list("attachment") == []

    with store.transaction():
        with store.transaction():  # nested: committed by the outermost only
            store.put("attachment", {"id": "a1"})
        store.put("volume", {"id": "v1", "status": "reserved"})
    store.close()
    reopened = Store(path)
    assert reopened.get("volume", "v1")["status"] == "reserved"
    assert reopened.get("attachment", "a1") == {"id": "a1"}


def test_setting_is_made_once(path):
    store = Store(path)
    calls = []

    def make():
        calls.append(1)
        return "made"

    assert store.setting("x", make) == "made"
    assert store.setting("x", make) == "made"
    assert calls == [1]
    store.close()
    assert Store(path).setting("x", lambda: "other") == "made"


def test_closed_store_refuses(path):
    store = Store(path)
    store.close()
    with pytest.raises(RuntimeError):
        store.get("volume", "v1")
