"""Durable state of devcloud: one SQLite file in the state dir.

SQLite (WAL, synchronous=FULL) gives atomic multi-record updates that survive
``kill -9`` and power loss without us writing fsync+rename dances by hand,
and stays fast with thousands of volumes (a JSON file would be rewritten
whole on every change). Records are JSON documents keyed by (kind, id), so the
schema never needs migrating when a field is added.

One re-entrant lock serialises every access: the cloud's read-check-write
sequences (e.g. "volume is available, so reserve it") run inside
``transaction()`` and are therefore atomic with respect to other requests.
"""

import json
import os
import sqlite3
import threading
from contextlib import contextmanager

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Store:
    """Documents by kind ("volume", "attachment") plus string settings."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        self._depth = 0
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the HTTP answer goes out.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self):
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def transaction(self):
        """Hold the lock and commit everything done inside at once (nestable)."""
        with self._lock:
            outermost = self._depth == 0
            if outermost:
                self._conn().execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outermost:
                    self._conn().execute("ROLLBACK")
                raise
            self._depth -= 1
            if outermost:
                self._conn().execute("COMMIT")

    def _conn(self):
        if self._db is None:
            raise RuntimeError("the devcloud store is closed")
        return self._db

    def get(self, kind, id_) -> dict | None:
        with self._lock:
            row = self._conn().execute(
                "SELECT doc FROM records WHERE kind = ? AND id = ?", (kind, id_)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, kind) -> list[dict]:
        with self._lock:
            rows = self._conn().execute(
                "SELECT doc FROM records WHERE kind = ?", (kind,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def put(self, kind, doc: dict) -> dict:
        with self.transaction():
            self._conn().execute(
                "INSERT OR REPLACE INTO records (kind, id, doc) VALUES (?, ?, ?)",
                (kind, doc["id"], json.dumps(doc, sort_keys=True)),
            )
        return doc

    def delete(self, kind, id_) -> bool:
        with self.transaction():
            cur = self._conn().execute(
                "DELETE FROM records WHERE kind = ? AND id = ?", (kind, id_)
            )
        return cur.rowcount > 0

    def get_setting(self, key) -> str | None:
        with self._lock:
            row = self._conn().execute(
                "SELECT value FROM settings WHERE key = ?", (key,)
            ).fetchone()
        return row[0] if row else None

    def set_setting(self, key, value: str) -> None:
        with self.transaction():
            self._conn().execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value)
            )

    def setting(self, key, make) -> str:
        """The setting ``key``, created from ``make()`` the first time."""
        with self.transaction():
            value = self.get_setting(key)
            if value is None:
                value = make()
                self.set_setting(key, value)
            return value
