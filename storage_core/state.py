"""Durable local state: what this host has attached and mounted, and for whom.

Kept in SQLite under the state dir with synchronous writes, so a kill -9 at any
point leaves the last committed truth on disk. Mounts are a multiset keyed by
(volume name, caller id): some callers reuse an id for overlapping mounts.
"""

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from storage_core.models import CloudShare, CloudVolume, HostAttachment

# Columns added after the first release, with their definitions: added to an
# older state file when it is opened, so an upgrade keeps every record.
_ADDED_COLUMNS = {
    "host_volumes": {"backend": "TEXT NOT NULL DEFAULT 'cinder'"},
    "known_volumes": {"backend": "TEXT NOT NULL DEFAULT 'cinder'", "proto": "TEXT", "status": "TEXT",
                      # A mount by the remembered record must know a multiattach volume
                      # (one host at a time unless shared): NULL before this column existed.
                      "multiattach": "INTEGER"},
    # When a caller's first live mount was counted (0: before this column existed).
    "mounts": {"since": "REAL NOT NULL DEFAULT 0"},
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS host_volumes (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL DEFAULT 'cinder',
    volume_id TEXT NOT NULL,
    attachment_id TEXT,
    connection_info TEXT,
    device_path TEXT,
    mountpoint TEXT,
    phase TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS known_volumes (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL DEFAULT 'cinder',
    volume_id TEXT NOT NULL,
    size_gb INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    volume_type TEXT,
    availability_zone TEXT,
    created_at TEXT,
    proto TEXT,
    status TEXT,
    multiattach INTEGER
);
CREATE TABLE IF NOT EXISTS host_facts (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mounts (
    name TEXT NOT NULL,
    caller_id TEXT NOT NULL,
    count INTEGER NOT NULL CHECK (count > 0),
    since REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (name, caller_id)
);
"""


class Phase:
    """How far the host side of a volume got. Written before each next step."""

    ATTACHING = "attaching"  # cloud attachment (or access rule) asked for; host side may not be
    ATTACHED = "attached"  # block device present (or access rule active) on this host
    MOUNTED = "mounted"  # file system mounted at mountpoint


@dataclass(frozen=True)
class HostVolume:
    """What this host holds of one volume.

    For a Cinder volume `attachment_id` is the cloud attachment and
    `connection_info` os-brick's; for a Manila share they are this host's
    access rule and the export that was mounted.
    """

    name: str
    volume_id: str
    phase: str
    attachment_id: str | None = None
    connection_info: dict | None = None
    device_path: str | None = None
    mountpoint: str | None = None
    backend: str = "cinder"

    @property
    def host_attachment(self) -> HostAttachment | None:
        if not self.attachment_id:
            return None
        return HostAttachment(
            volume_id=self.volume_id,
            attachment_id=self.attachment_id,
            connection_info=self.connection_info or {},
            device_path=self.device_path,
        )


class StateStore:
    def __init__(self, path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self):
        for table, columns in _ADDED_COLUMNS.items():
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column, definition in columns.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def close(self):
        with self._lock:
            self._db.close()

    # -- host volumes ---------------------------------------------------

    def host_volume(self, name) -> HostVolume | None:
        with self._lock:
            row = self._db.execute(
                "SELECT name, volume_id, phase, backend, attachment_id, connection_info, device_path,"
                " mountpoint FROM host_volumes WHERE name = ?",
                (name,),
            ).fetchone()
        return _row_to_host_volume(row) if row else None

    def host_volumes(self) -> list[HostVolume]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, volume_id, phase, backend, attachment_id, connection_info, device_path,"
                " mountpoint FROM host_volumes ORDER BY name"
            ).fetchall()
        return [_row_to_host_volume(r) for r in rows]

    def save_host_volume(self, hv: HostVolume) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO host_volumes (name, volume_id, phase, backend, attachment_id,"
                " connection_info, device_path, mountpoint) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hv.name,
                    hv.volume_id,
                    hv.phase,
                    hv.backend,
                    hv.attachment_id,
                    json.dumps(hv.connection_info) if hv.connection_info is not None else None,
                    hv.device_path,
                    hv.mountpoint,
                ),
            )

    def forget_host_volume(self, name) -> None:
        with self._lock:
            self._db.execute("DELETE FROM host_volumes WHERE name = ?", (name,))

    # -- facts about this host ------------------------------------------

    def host_fact(self, key) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM host_facts WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_host_fact(self, key, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO host_facts (key, value) VALUES (?, ?)", (key, value))

    def delete_host_fact(self, key) -> None:
        with self._lock:
            self._db.execute("DELETE FROM host_facts WHERE key = ?", (key,))

    def host_facts_with_prefix(self, prefix) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM host_facts ORDER BY key").fetchall()
        return [(k, v) for k, v in rows if k.startswith(prefix)]

    # -- volumes seen in the cloud --------------------------------------

    def remember_volume(self, backend, vol: CloudVolume | CloudShare) -> None:
        """Note an owned Cinder volume or Manila share by name: Get, Path and List
        answer from these records, and a mount need not look the volume up."""
        with self._lock:
            self._db.execute(_REMEMBER, _known_row(backend, vol))

    def replace_known(self, backend, volumes) -> None:
        """The whole list of one backend's owned volumes, as the cloud just gave it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM known_volumes WHERE backend = ?", (backend,))
                self._db.executemany(_REMEMBER, [_known_row(backend, v) for v in volumes])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def known_volume(self, name) -> tuple[str, CloudVolume | CloudShare] | None:
        """(backend, the volume or share last seen under `name`), with the status it had then."""
        with self._lock:
            row = self._db.execute(f"SELECT {_KNOWN_COLUMNS} FROM known_volumes WHERE name = ?",
                                   (name,)).fetchone()
        return None if row is None else _known_record(row)

    def known_mountpoints(self, backends) -> list[tuple[str, str | None]]:
        """(name, mount point while mounted here, else None) of every known volume
        of `backends`, in one query: what a List of thousands needs, nothing more."""
        marks = ", ".join("?" for _ in backends)
        with self._lock:
            return self._db.execute(
                "SELECT k.name, CASE WHEN h.phase = ? AND m.total > 0 THEN h.mountpoint END"
                " FROM known_volumes k LEFT JOIN host_volumes h ON h.name = k.name"
                " LEFT JOIN (SELECT name, SUM(count) AS total FROM mounts GROUP BY name) m"
                f" ON m.name = k.name WHERE k.backend IN ({marks}) ORDER BY k.name",
                (Phase.MOUNTED, *backends),
            ).fetchall()

    def known_volumes(self) -> list[tuple[str, CloudVolume | CloudShare]]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_KNOWN_COLUMNS} FROM known_volumes ORDER BY name").fetchall()
        return [_known_record(r) for r in rows]

    def forget_volume(self, name) -> None:
        with self._lock:
            self._db.execute("DELETE FROM known_volumes WHERE name = ?", (name,))

    # -- mounts ---------------------------------------------------------

    def add_mount(self, name, caller_id) -> int:
        """Count one more mount of `name` by `caller_id`; return the volume's total."""
        with self._lock:
            self._db.execute(
                "INSERT INTO mounts (name, caller_id, count, since) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (name, caller_id) DO UPDATE SET count = count + 1",
                (name, caller_id, time.time()),
            )
            return self._total(name)

    def remove_mount(self, name, caller_id) -> int | None:
        """Count one mount of `name` by `caller_id` less.

        Returns the volume's remaining total, or None when that caller held no
        mount (nothing changed).
        """
        with self._lock:
            row = self._db.execute(
                "SELECT count FROM mounts WHERE name = ? AND caller_id = ?", (name, caller_id)
            ).fetchone()
            if row is None:
                return None
            if row[0] > 1:
                self._db.execute(
                    "UPDATE mounts SET count = count - 1 WHERE name = ? AND caller_id = ?",
                    (name, caller_id),
                )
            else:
                self._db.execute(
                    "DELETE FROM mounts WHERE name = ? AND caller_id = ?", (name, caller_id)
                )
            return self._total(name)

    def forget_mounts(self, name, callers=None) -> None:
        """Drop the counts of `name` (of `callers`, or all): the mounts they counted are known gone."""
        with self._lock:
            if callers is None:
                self._db.execute("DELETE FROM mounts WHERE name = ?", (name,))
            else:
                self._db.executemany("DELETE FROM mounts WHERE name = ? AND caller_id = ?",
                                     [(name, caller) for caller in callers])

    def mount_callers_since(self, name) -> dict[str, float]:
        """{caller id: when its first live mount of `name` was counted (epoch seconds)}."""
        with self._lock:
            return dict(self._db.execute("SELECT caller_id, since FROM mounts WHERE name = ?", (name,)))

    def mount_count(self, name) -> int:
        with self._lock:
            return self._total(name)

    def mount_callers(self, name) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT caller_id, count FROM mounts WHERE name = ?", (name,)
            ).fetchall()
        return dict(rows)

    def mount_counts(self) -> dict[str, int]:
        """Live mounts of every mounted volume, in one query (List of thousands)."""
        with self._lock:
            return dict(self._db.execute("SELECT name, SUM(count) FROM mounts GROUP BY name").fetchall())

    def _total(self, name) -> int:
        row = self._db.execute("SELECT SUM(count) FROM mounts WHERE name = ?", (name,)).fetchone()
        return row[0] or 0


_KNOWN_COLUMNS = ("name, backend, volume_id, size_gb, metadata, volume_type, availability_zone,"
                  " created_at, proto, status, multiattach")
_REMEMBER = (f"INSERT OR REPLACE INTO known_volumes ({_KNOWN_COLUMNS})"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _known_row(backend, vol) -> tuple:
    share = isinstance(vol, CloudShare)
    return (vol.name, backend, vol.id, vol.size_gb, json.dumps(dict(vol.metadata)),
            vol.share_type if share else vol.volume_type, vol.availability_zone,
            vol.created_at.isoformat() if vol.created_at else None,
            vol.proto if share else None, vol.status, None if share else int(vol.multiattach))


def _known_record(row):
    name, backend, volume_id, size_gb, metadata, type_name, zone, created_at, proto, status, multiattach = row
    common = dict(
        id=volume_id,
        name=name,
        size_gb=size_gb,
        status=status or "unknown",
        created_at=datetime.fromisoformat(created_at) if created_at else None,
        metadata=json.loads(metadata),
        availability_zone=zone,
    )
    if proto is not None:
        return backend, CloudShare(proto=proto, share_type=type_name, **common)
    return backend, CloudVolume(volume_type=type_name, multiattach=bool(multiattach), **common)


def _row_to_host_volume(row) -> HostVolume:
    name, volume_id, phase, backend, attachment_id, connection_info, device_path, mountpoint = row
    return HostVolume(
        name=name,
        volume_id=volume_id,
        phase=phase,
        backend=backend,
        attachment_id=attachment_id,
        connection_info=json.loads(connection_info) if connection_info else None,
        device_path=device_path,
        mountpoint=mountpoint,
    )
