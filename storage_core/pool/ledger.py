"""This host's record of the pool volumes it made and holds, in the state database.

Every step of a fill is written before the next one, so a crash leaves what
to finish or undo; tier 3/4 volumes keep their attachment and staging mount here.
"""

import json
import os
import sqlite3
import threading
from dataclasses import dataclass

from storage_core.models import HostAttachment
from storage_core.pool.spec import READY

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pool_volumes (
    volume_id TEXT PRIMARY KEY,
    pool_key TEXT NOT NULL,
    tier INTEGER NOT NULL,
    phase TEXT NOT NULL,
    attachment_id TEXT,
    connection_info TEXT,
    device_path TEXT,
    staging TEXT
);
"""

# A volume's phase here: FILLING, READY (as its cloud tag says) or CLAIMED
# (taken by a Create; renamed and re-tagged next).
CLAIMED = "claimed"


@dataclass(frozen=True)
class PoolVolume:
    volume_id: str
    pool_key: str
    tier: int
    phase: str
    attachment_id: str | None = None
    connection_info: dict | None = None
    device_path: str | None = None
    staging: str | None = None

    @property
    def host_attachment(self) -> HostAttachment | None:
        if not self.attachment_id:
            return None
        return HostAttachment(self.volume_id, self.attachment_id, self.connection_info or {}, self.device_path)


_COLUMNS = "volume_id, pool_key, tier, phase, attachment_id, connection_info, device_path, staging"


class PoolLedger:
    def __init__(self, path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def save(self, pv: PoolVolume) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO pool_volumes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (pv.volume_id, pv.pool_key, pv.tier, pv.phase, pv.attachment_id,
                 json.dumps(pv.connection_info) if pv.connection_info is not None else None,
                 pv.device_path, pv.staging),
            )

    def forget(self, volume_id) -> None:
        with self._lock:
            self._db.execute("DELETE FROM pool_volumes WHERE volume_id = ?", (volume_id,))

    def all(self, pool_key=None) -> list[PoolVolume]:
        query, args = f"SELECT {_COLUMNS} FROM pool_volumes", ()
        if pool_key is not None:
            query, args = query + " WHERE pool_key = ?", (pool_key,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY rowid", args).fetchall()
        return [_row(r) for r in rows]

    def take_ready(self, pool_key) -> PoolVolume | None:
        """Mark one ready volume of the pool claimed and return it (None: none ready)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    f"SELECT {_COLUMNS} FROM pool_volumes WHERE pool_key = ? AND phase = ? ORDER BY rowid LIMIT 1",
                    (pool_key, READY),
                ).fetchone()
                if row is not None:
                    self._db.execute("UPDATE pool_volumes SET phase = ? WHERE volume_id = ?", (CLAIMED, row[0]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return None if row is None else _row(row[:3] + (CLAIMED,) + row[4:])

    def close(self):
        with self._lock:
            self._db.close()


def _row(row) -> PoolVolume:
    volume_id, pool_key, tier, phase, attachment_id, connection_info, device_path, staging = row
    return PoolVolume(volume_id, pool_key, tier, phase, attachment_id,
                      json.loads(connection_info) if connection_info else None, device_path, staging)
