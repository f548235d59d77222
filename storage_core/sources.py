"""Where a new volume's data comes from: a snapshot, a backup or another volume,
named by the caller (a name fuxi gave it, or the cloud's id), found in Cinder.

A snapshot or backup is found by id (any of the project's), or by name among
the ones fuxi took; a volume by its fuxi name, or by id. The source must be
ready to copy (``available``; a volume may also be ``in-use``), and the new
volume at least as large: its size defaults to the source's.
"""

import dataclasses
import uuid

from storage_core.errors import Conflict, InvalidInput, NotFound
from storage_core.models import FSTYPE_KEY, POOL_KEY, SourceRef, VolumeSpec

# Statuses a source can be copied from: Cinder's own checks for each kind.
_COPYABLE = {"snapshot": ("available",), "backup": ("available",), "volume": ("available", "in-use")}
_LISTED_BY = {"snapshot": "fuxi snapshot list", "backup": "fuxi backup list", "volume": "fuxi volumes"}


def is_cloud_id(ref) -> bool:
    try:
        uuid.UUID(ref)
        return True
    except ValueError:
        return False


class SourceResolver:
    def __init__(self, volumes, snapshots, backups, limits):
        """`volumes`: the Cinder backend (storage_core.backends.cinder); `snapshots`
        and `backups`: storage_core.backends.cinder_copies."""
        self._volumes = volumes
        self._copies = {"snapshot": snapshots, "backup": backups}
        self._limits = limits

    # -- finding ----------------------------------------------------------

    def find(self, kind, ref, owned_only=False):
        """The snapshot, backup or volume `ref` names; NotFound or Conflict saying why not."""
        if kind == "volume":
            return self._find_volume(ref)
        records = self._copies[kind]
        if is_cloud_id(ref):
            try:
                found = records.get(ref)
            except NotFound:
                raise NotFound(f"{kind} {ref} does not exist in this project's Cinder; "
                               f"`{_LISTED_BY[kind]}` shows them") from None
            if owned_only and not found.owned:
                raise Conflict(f"{kind} {ref} ({found.name!r}) was not taken by fuxi; fuxi leaves it alone")
            return found
        named = [r for r in records.list() if r.owned and r.name == ref]
        if not named:
            raise NotFound(f"fuxi has no {kind} called {ref!r}; `{_LISTED_BY[kind]}` shows them (by name or id)")
        if len(named) > 1:
            raise Conflict(
                f"fuxi has {len(named)} {kind}s called {ref!r} ({', '.join(r.id for r in named)}); "
                "name one by its id"
            )
        return named[0]

    def _find_volume(self, ref):
        found = self._volumes.find(ref)
        if found is not None and found.owned and POOL_KEY not in found.metadata:
            return found
        if is_cloud_id(ref):
            try:
                return self._volumes.get(ref)
            except NotFound:
                pass
        raise NotFound(f"there is no volume called {ref!r} (a fuxi volume's name or a Cinder volume id); "
                       "`fuxi volumes` shows them")

    # -- resolving a create -------------------------------------------------

    def resolve(self, spec: VolumeSpec) -> VolumeSpec:
        """`spec` with its source named by the cloud's id, its size (the source's
        unless a larger one was asked) and the file system the source holds."""
        source = spec.source
        record = self.find(source.kind, source.ref)
        if record.status not in _COPYABLE[source.kind]:
            raise Conflict(
                f"{source} is {record.status}; a volume can be made from a {source.kind} that is "
                f"{' or '.join(_COPYABLE[source.kind])}"
            )
        if spec.size_gb and spec.size_gb < record.size_gb:
            raise InvalidInput(
                f"option size={spec.size_gb} is smaller than {source} ({record.size_gb} GiB); allowed: "
                f"{record.size_gb} to {self._limits.max_size_gb} GiB, or no size for the {source.kind}'s own"
            )
        if record.size_gb > self._limits.max_size_gb:
            raise InvalidInput(f"{source} is {record.size_gb} GiB, more than max_size_gb "
                               f"({self._limits.max_size_gb} GiB) of this fuxi")
        return dataclasses.replace(
            spec,
            size_gb=spec.size_gb or record.size_gb,
            fstype=record.metadata.get(FSTYPE_KEY) or "",
            source=SourceRef(source.kind, record.id),
        )

    def same_source(self, existing, source: SourceRef) -> bool:
        """Was `existing` made from what `source` names? (A Create retried, or
        Docker's second Create of the name.)"""
        recorded = SourceRef.recorded_in(existing.metadata)
        if recorded is None or recorded.kind != source.kind:
            return False
        if source.ref == recorded.ref:
            return True
        try:
            return self.find(source.kind, source.ref).id == recorded.ref
        except (NotFound, Conflict):
            return False
