"""The share service behind the Manila API: records, status rules, file backends.

What manila-share and its drivers do in a real cloud happens here. A share is
a directory on a real file server the test suite runs (GlusterFS, CephFS) or
a well-formed fake NFS export; devcloud only hands out its export path, and
creating the directory is left to a pluggable ``make_share_dir(proto,
share_id)`` (default: record only). Status rules follow Manila's:

* share: ``creating`` -> ``available`` (or ``error``: ``make_share_dir``
  failed, as a driver failure leaves it); it gets its host and availability
  zone when scheduled, i.e. when the create finishes. Delete: ``available``/
  ``error``/``inactive`` -> ``deleting`` -> gone (``error_deleting`` when
  ``remove_share_dir`` fails). Access rules never block a delete: Manila
  drops them with the share.
* access rule: ``queued_to_apply`` -> ``active`` (or ``error`` when the
  protocol's driver refuses the rule); deny: ``queued_to_deny`` -> gone.
  The share's ``access_rules_status`` goes from ``active`` to ``syncing``
  while rules are queued, and settles on ``error`` while any rule is in
  error, else ``active`` (an ``error`` stays until then). A rule in error
  does not stop new ones (since API 2.28; the API checks older ones).
  Rules are listed in id order, as Manila's MySQL table returns them.

Every change is one store transaction; slow work (latency, the directory
hooks) runs on the scheduler thread outside the store lock.
"""

import base64
import ipaddress
import logging
import os
import re
import shutil
import secrets
import string
import struct
import time
import uuid
from dataclasses import asdict, dataclass, replace

from storage_core.devcloud.web import cinder_time

LOG = logging.getLogger(__name__)

#: Manila's enabled_share_protocols: the ones devcloud has a backend for
#: (contrib/realcloud enables the same three). Manila's API refuses others.
SERVED_PROTOCOLS = ("NFS", "CEPHFS", "GLUSTERFS")
#: The access types each protocol's driver applies (LVM NFS helper: ip,
#: CephFS native: cephx, GlusterFS native: cert); others end in ``error``.
DRIVER_ACCESS_TYPES = {"NFS": ("ip",), "CEPHFS": ("cephx",), "GLUSTERFS": ("cert",)}
ACCESS_LEVELS = ("rw", "ro")
#: The cephx id manila-share itself uses; the CephFS driver refuses it.
MANILA_CEPHX_ID = "manila"
DELETABLE_STATUSES = ("available", "error", "inactive")
#: Share statuses (of those devcloud has) in which Manila applies no new
#: access rule (its TRANSITIONAL_STATUSES); ``error`` too before API 2.74.
NO_ACCESS_CHANGE_STATUSES = ("creating", "deleting")
DEFAULT_AVAILABILITY_ZONE = "nova"
DEFAULT_SHARE_TYPE_NAME = "default"
DEFAULT_SHARE_TYPE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "devcloud-share-type-default"))


class ShareError(Exception):
    """A refusal the API answers as ``{"<fault>": {"code": status, "message": ...}}``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


#: Manila's fault text for a missing metadata key (class name, then message).
METADATA_ITEM_NOT_FOUND = "MetadataItemNotFound: Metadata item is not found."


def share_not_found(share_id):
    return ShareError(404, f"Share {share_id} could not be found.")


@dataclass(frozen=True)
class ShareBackends:
    """Where each protocol's shares live: export paths are built from these.

    ``glusterfs_server``/``glusterfs_volume``: a share is the subdirectory
    ``share-<id>`` of the volume, exported as ``HOST:/VOL/share-<id>``
    (a GlusterFS subdirectory mount). ``cephfs_mon``/``cephfs_name``: a
    share is ``/volumes/_nogroup/<id>`` of the file system, exported as
    ``MON:/volumes/_nogroup/<id>``. NFS: ``NFS_SERVER:/exports/<id>``, fake
    (nothing here can mount NFS), only well-formed.
    """

    nfs_server: str = "127.0.0.1"
    glusterfs_server: str = "127.0.0.1"
    glusterfs_volume: str = "devcloud"
    cephfs_mon: str = "127.0.0.1:6789"
    cephfs_name: str = "cephfs"

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, str) or not value or any(c.isspace() for c in value):
                raise ValueError(f"share backend {name} must be a non-empty word, not {value!r}")
        if "/" in self.glusterfs_volume:
            raise ValueError(f"glusterfs_volume must be a volume name, not {self.glusterfs_volume!r}")

    def subdir(self, proto, share_id) -> str:
        """The share's directory relative to the root of its backing file system."""
        proto = proto.upper()
        if proto == "GLUSTERFS":
            return f"share-{share_id}"
        if proto == "CEPHFS":
            return f"volumes/_nogroup/{share_id}"
        return f"exports/{share_id}"

    def export_path(self, proto, share_id) -> str:
        proto = proto.upper()
        if proto == "GLUSTERFS":
            return f"{self.glusterfs_server}:/{self.glusterfs_volume}/{self.subdir(proto, share_id)}"
        if proto == "CEPHFS":
            return f"{self.cephfs_mon}:/{self.subdir(proto, share_id)}"
        return f"{self.nfs_server}:/{self.subdir(proto, share_id)}"

    def updated(self, changes: dict) -> "ShareBackends":
        unknown = set(changes) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown share backend fields: {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


def cephx_key() -> str:
    """A key shaped like Ceph's (``AQ...==``): type, creation time, 16 secret bytes."""
    now = time.time()
    header = struct.pack("<HIIH", 1, int(now), int((now % 1) * 1e9), 16)
    return base64.b64encode(header + secrets.token_bytes(16)).decode("ascii")


def validate_access(access_type, access_to, *, enable_ceph, enable_ipv6):
    """Manila's API checks of a new rule (manila.api.common.validate_access)."""
    if not isinstance(access_to, str):
        raise ShareError(400, f"Invalid access_to {access_to!r}: a string is required.")
    if access_type == "ip":
        try:
            if enable_ipv6:
                ipaddress.ip_network(access_to)
            else:
                ipaddress.IPv4Network(access_to)
        except ValueError as exc:
            raise ShareError(400, str(exc)) from None
    elif access_type == "user":
        if re.match(r"[\s|\.]+$", access_to):
            raise ShareError(400, "Invalid user or group name,cannot consist solely of "
                                  "periods or spaces.")
        if not re.match(r'.[^\"\/\\\[\]\:\;\|\=\,\+\*\?\<\>]{3,254}$', access_to):
            raise ShareError(400, 'Invalid user or group name. Must be 4-255 characters and '
                                  'consist of alphanumeric characters and exclude special '
                                  'characters "/\\[]:;|=,+*?<>')
    elif access_type == "cert":
        if not 0 < len(access_to.strip()) < 65:
            raise ShareError(400, "Invalid CN (common name). Must be 1-64 chars long.")
    elif access_type == "cephx" and enable_ceph:
        if not access_to:
            raise ShareError(400, "Ceph IDs may not be empty.")
        if not set(access_to) <= set(string.printable):
            raise ShareError(400, "Ceph IDs must consist of ASCII printable characters.")
        if "." in access_to:
            raise ShareError(400, "Ceph IDs may not contain periods.")
    elif enable_ceph:
        raise ShareError(400, "Only 'ip', 'user', 'cert' or 'cephx' access types are supported.")
    else:
        raise ShareError(400, "Only 'ip', 'user' or 'cert' access types are supported.")


def _driver_refusal(share, rule) -> str | None:
    """Why the share's driver would fail to apply ``rule`` (None: it applies)."""
    proto = share["share_proto"]
    allowed = DRIVER_ACCESS_TYPES.get(proto, ())
    if rule["access_type"] not in allowed:
        return f"Only {'/'.join(allowed) or 'no'} access type(s) allowed for {proto} shares."
    if proto == "CEPHFS" and rule["access_to"] == MANILA_CEPHX_ID:
        return (f"Ceph authentication ID {MANILA_CEPHX_ID} must be different than the one "
                "the Manila service uses.")
    if proto == "GLUSTERFS" and rule["access_level"] != "rw":
        return "GlusterFS native protocol supports only 'rw' access level."
    return None


class ShareService:
    """Shares and their access rules, kept in the store."""

    def __init__(self, store, scheduler, latency, backends, make_share_dir=None,
                 remove_share_dir=None):
        """``latency`` and ``backends`` are callables returning the current values."""
        self._store = store
        self._scheduler = scheduler
        self._latency = latency
        self._backends = backends
        self._make_share_dir = make_share_dir
        self._remove_share_dir = remove_share_dir

    # -- shares --------------------------------------------------------------

    def create_share(self, project_id, user_id, *, share_proto, size, name, description,
                     metadata, share_type_id, share_type_name, availability_zone,
                     is_public=False) -> dict:
        now = cinder_time()
        share_id = str(uuid.uuid4())
        share = {
            "id": share_id,
            "project_id": project_id,
            "user_id": user_id,
            "name": name,
            "description": description,
            "size": size,
            "share_proto": share_proto,
            "status": "creating",
            "metadata": dict(metadata or {}),
            "share_type_id": share_type_id,
            "share_type_name": share_type_name,
            "share_network_id": None,
            "is_public": bool(is_public),
            # Filled in by the scheduler; Manila shows "" and null until then.
            "host": "",
            "availability_zone": availability_zone,
            "progress": None,
            "instance_id": str(uuid.uuid4()),
            "access_rules_status": "active",
            "export_locations": [],
            "created_at": now,
            "updated_at": None,
        }
        self._store.put("share", share)
        self._scheduler.call_later(self._latency().create, self._finish_create, share_id)
        return share

    def _finish_create(self, share_id):
        share = self._store.get("share", share_id)
        if share is None or share["status"] != "creating":
            return
        proto = share["share_proto"]
        status = "available"
        if self._make_share_dir is not None:
            try:
                self._make_share_dir(proto, share_id)
            except Exception:
                LOG.exception("make_share_dir failed for share %s", share_id)
                status = "error"
        with self._store.transaction():
            share = self._store.get("share", share_id)
            if share is None or share["status"] != "creating":
                return
            # Scheduled: the backend's pool and its zone, whatever the driver did.
            share["host"] = f"devcloud@{proto.lower()}#{proto.lower()}"
            share["availability_zone"] = DEFAULT_AVAILABILITY_ZONE
            if status == "available":
                share["progress"] = "100%"
                now = cinder_time()
                share["export_locations"] = [{
                    "id": str(uuid.uuid4()),
                    "path": self._backends().export_path(proto, share_id),
                    "preferred": True,
                    "is_admin_only": False,
                    "created_at": now,
                    "updated_at": now,
                }]
            self._touch(share, status=status)

    def _touch(self, share, **changes):
        share.update(changes)
        share["updated_at"] = cinder_time()
        self._store.put("share", share)
        return share

    def get_share(self, project_id, share_id) -> dict:
        share = self._store.get("share", share_id)
        if share is None or share["project_id"] != project_id:
            raise share_not_found(share_id)
        return share

    def list_shares(self, project_id) -> list[dict]:
        return [s for s in self._store.list("share") if s["project_id"] == project_id]

    def update_share(self, project_id, share_id, changes) -> dict:
        with self._store.transaction():
            share = self.get_share(project_id, share_id)
            return self._touch(share, **changes)

    def extend_share(self, project_id, share_id, new_size) -> None:
        """Manila's share extend: available -> extending -> available, bigger.
        A share here is a directory: its size is a number, nothing to grow."""
        with self._store.transaction():
            share = self.get_share(project_id, share_id)
            if share["status"] != "available":
                raise ShareError(400, f"Invalid share: Share {share_id} status must be 'available' to "
                                      f"extend, but current status is: {share['status']}.")
            if new_size <= share["size"]:
                raise ShareError(400, "Invalid input received: New size for extend must be greater than "
                                      f"current size. (current: {share['size']}, extended: {new_size}).")
            self._touch(share, status="extending")
        self._scheduler.call_later(self._latency().create, self._finish_extend, share_id, new_size)

    def _finish_extend(self, share_id, new_size):
        with self._store.transaction():
            share = self._store.get("share", share_id)
            if share is not None and share["status"] == "extending":
                self._touch(share, status="available", size=new_size)

    def delete_share(self, project_id, share_id, force=False) -> None:
        with self._store.transaction():
            share = self.get_share(project_id, share_id)
            if not force and share["status"] not in DELETABLE_STATUSES:
                raise ShareError(403, "Invalid share: Share status must be one of "
                                      f"{DELETABLE_STATUSES}.")
            self._touch(share, status="deleting")
        self._scheduler.call_later(self._latency().delete, self._finish_delete, share_id)

    def _finish_delete(self, share_id):
        share = self._store.get("share", share_id)
        if share is None or share["status"] != "deleting":
            return
        if self._remove_share_dir is not None and share.get("export_locations"):
            try:
                self._remove_share_dir(share["share_proto"], share_id)
            except Exception:
                LOG.exception("remove_share_dir failed for share %s", share_id)
                with self._store.transaction():
                    share = self._store.get("share", share_id)
                    if share is not None and share["status"] == "deleting":
                        self._touch(share, status="error_deleting")
                return
        with self._store.transaction():
            for rule in self.rules_of(share_id):
                self._store.delete("share_access", rule["id"])
            self._store.delete("share", share_id)

    def update_metadata(self, project_id, share_id, metadata, replace) -> dict:
        with self._store.transaction():
            share = self.get_share(project_id, share_id)
            new = dict(metadata) if replace else {**share["metadata"], **metadata}
            self._touch(share, metadata=new)
            return new

    def delete_metadata_item(self, project_id, share_id, key) -> None:
        with self._store.transaction():
            share = self.get_share(project_id, share_id)
            if key not in share["metadata"]:
                raise ShareError(404, METADATA_ITEM_NOT_FOUND)
            del share["metadata"][key]
            self._touch(share)

    # -- access rules --------------------------------------------------------

    def rules_of(self, share_id) -> list[dict]:
        rules = [r for r in self._store.list("share_access") if r["share_id"] == share_id]
        return sorted(rules, key=lambda r: r["id"])

    def get_rule(self, project_id, access_id) -> dict | None:
        rule = self._store.get("share_access", access_id)
        if rule is None or rule["project_id"] != project_id:
            return None
        return rule

    def allow_access(self, project_id, share_id, *, access_type, access_to, access_level,
                     metadata, allow_on_error_state=False) -> dict:
        """Manila's share API checks, in its order: level, twin rule, share state.

        ``allow_on_error_state`` (API 2.74+): a share in ``error`` that has a
        host may get rules.
        """
        if access_level is not None and access_level not in ACCESS_LEVELS:
            raise ShareError(400, f"Invalid access rule: Invalid share access level: "
                                  f"{access_level}.")
        with self._store.transaction():
            share = self.get_share(project_id, share_id)
            for rule in self.rules_of(share_id):
                if rule["access_type"] == access_type and rule["access_to"] == access_to:
                    raise ShareError(400, f"Share access {access_type}:{access_to} exists.")
            refused = NO_ACCESS_CHANGE_STATUSES + (() if allow_on_error_state else ("error",))
            if not share["host"] or share["status"] in refused:
                raise ShareError(400, "New access rules cannot be applied while the share or "
                                      "any of its replicas or migration copies lacks a valid "
                                      "host or is in an invalid state.")
            now = cinder_time()
            rule = {
                "id": str(uuid.uuid4()),
                "share_id": share_id,
                "project_id": project_id,
                "access_type": access_type,
                "access_to": access_to,
                "access_level": access_level or "rw",
                "state": "queued_to_apply",
                "access_key": None,
                "metadata": dict(metadata or {}),
                "created_at": now,
                "updated_at": None,
            }
            self._store.put("share_access", rule)
            self._sync_rules_status(share)
        self._scheduler.call_later(self._latency().access, self._apply_rule, rule["id"])
        return rule

    def _apply_rule(self, access_id):
        with self._store.transaction():
            rule = self._store.get("share_access", access_id)
            if rule is None or rule["state"] != "queued_to_apply":
                return
            share = self._store.get("share", rule["share_id"])
            if share is None:
                self._store.delete("share_access", access_id)
                return
            refusal = _driver_refusal(share, rule)
            if refusal:
                LOG.warning("access rule %s of share %s: %s", access_id, share["id"], refusal)
                rule["state"] = "error"
            else:
                rule["state"] = "active"
                if rule["access_type"] == "cephx":
                    rule["access_key"] = cephx_key()
            rule["updated_at"] = cinder_time()
            self._store.put("share_access", rule)
            self._sync_rules_status(share)

    def deny_access(self, project_id, share_id, access_id) -> None:
        with self._store.transaction():
            share = self.get_share(project_id, share_id)
            rule = self.get_rule(project_id, access_id)
            if rule is None or rule["share_id"] != share_id:
                raise ShareError(404, "Resource could not be found.")
            if rule["state"] in ("queued_to_deny", "denying"):
                return
            rule["state"] = "queued_to_deny"
            rule["updated_at"] = cinder_time()
            self._store.put("share_access", rule)
            self._sync_rules_status(share)
        self._scheduler.call_later(self._latency().access, self._remove_rule, access_id)

    def _remove_rule(self, access_id):
        with self._store.transaction():
            rule = self._store.get("share_access", access_id)
            if rule is None or rule["state"] != "queued_to_deny":
                return
            self._store.delete("share_access", access_id)
            share = self._store.get("share", rule["share_id"])
            if share is not None:
                self._sync_rules_status(share)

    def _sync_rules_status(self, share):
        """Manila's transitions of a share's access_rules_status.

        Queuing a change turns ``active`` into ``syncing`` but leaves ``error``
        as it is; once nothing is queued, the status is ``error`` if any rule
        is in error, else ``active``.
        """
        states = {r["state"] for r in self.rules_of(share["id"])}
        status = share["access_rules_status"]
        if states & {"queued_to_apply", "applying", "queued_to_deny", "denying"}:
            if status == "active":
                status = "syncing"
        elif "error" in states:
            status = "error"
        else:
            status = "active"
        if share["access_rules_status"] != status:
            self._touch(share, access_rules_status=status)

    # -- start-up ------------------------------------------------------------

    def recover(self) -> None:
        """Finish what a crash interrupted."""
        for share in self._store.list("share"):
            if share["status"] == "creating":
                self._finish_create(share["id"])
            elif share["status"] == "deleting":
                self._finish_delete(share["id"])
        for rule in self._store.list("share_access"):
            if rule["state"] == "queued_to_apply":
                self._apply_rule(rule["id"])
            elif rule["state"] == "queued_to_deny":
                self._remove_rule(rule["id"])
            elif self._store.get("share", rule["share_id"]) is None:
                self._store.delete("share_access", rule["id"])



def directory_hooks(mounts) -> tuple:
    """``(make_share_dir, remove_share_dir)`` working under mounted backends.

    ``mounts`` maps a protocol (``GLUSTERFS``, ``CEPHFS``, ``NFS``) to the
    directory where the root of its backing file system is mounted (e.g. a
    FUSE mount of the GlusterFS volume); ``subdirs`` of the backends decide
    where each share's directory goes. Protocols without a mount are only
    recorded.
    """
    mounts = {proto.upper(): os.fspath(path) for proto, path in (mounts or {}).items()}
    backends = ShareBackends()

    def make_share_dir(proto, share_id):
        root = mounts.get(proto.upper())
        if root is not None:
            os.makedirs(os.path.join(root, backends.subdir(proto, share_id)), exist_ok=True)

    def remove_share_dir(proto, share_id):
        root = mounts.get(proto.upper())
        if root is not None:
            path = os.path.join(root, backends.subdir(proto, share_id))
            if os.path.lexists(path):
                shutil.rmtree(path)

    return make_share_dir, remove_share_dir
