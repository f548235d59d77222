"""In-memory stand-ins for the cloud and the host, shipped in the package so
any plugin built on storage_core can unit-test against them.

They keep the same contracts as the real adapters (the same errors for the
same mistakes) and record what was asked of them.
"""

import contextlib
import dataclasses
import ipaddress
import itertools
import os
import socket
import threading
import uuid
from datetime import datetime, timezone

from storage_core.config import ShareConfig, VolumeLimits
from storage_core.errors import AttachError, CloudError, CommandError, Conflict, FilesystemError, NotFound
from storage_core.executor import CommandResult
from storage_core.host import HostIdentity
from storage_core.kinds.block import CinderVolumes
from storage_core.kinds.share import HostAccess, ManilaShares
from storage_core.models import (
    ADOPTED_FROM_KEY,
    POOL_KEY,
    FSTYPE_KEY,
    OWNER_KEY,
    OWNER_VALUE,
    AccessRule,
    CloudAttachment,
    CloudShare,
    CloudVolume,
    ExportLocation,
    HostAttachment,
    ServerVolumeAttachment,
)
from storage_core.pool.claims import PoolClaims
from storage_core.pool.filler import PoolFiller
from storage_core.pool.keeper import PoolKeeper
from storage_core.pool.ledger import PoolLedger
from storage_core.service import VolumeService
from storage_core.state import StateStore


class RecordingExecutor:
    """Records argv; answers from a table of (argv prefix) -> CommandResult."""

    def __init__(self, answers=None):
        self.calls = []
        self.answers = dict(answers or {})

    def run(self, argv, ok_exit_codes=(0,), timeout=None):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        for prefix, result in self.answers.items():
            if tuple(argv[: len(prefix)]) == tuple(prefix):
                if result.exit_code not in ok_exit_codes:
                    raise CommandError(argv, result.exit_code, result.stdout, result.stderr)
                return result
        return CommandResult("", "", 0)


class FakeCinder:
    """A block-storage backend held in memory, with CinderBackend's interface."""

    def __init__(self):
        self.volumes = {}
        self.attachments = {}
        self._lock = threading.Lock()
        self.calls = []

    def add_volume(self, name, size_gb=1, owned=True, fstype="ext4", status="available", multiattach=False):
        metadata = {OWNER_KEY: OWNER_VALUE, FSTYPE_KEY: fstype} if owned else {}
        vol = CloudVolume(
            id=str(uuid.uuid4()), name=name, size_gb=size_gb, status=status,
            created_at=datetime.now(timezone.utc), metadata=metadata, multiattach=multiattach,
        )
        self.volumes[vol.id] = vol
        return vol

    def find(self, name):
        self.calls.append(("find", name))
        found = [v for v in self.volumes.values() if v.name == name]
        if len(found) > 1:
            raise Conflict(f"{len(found)} volumes named {name!r}")
        return found[0] if found else None

    def named(self, name):
        self.calls.append(("named", name))
        return [v for v in self.volumes.values() if v.name == name]

    def get(self, volume_id):
        self.calls.append(("get", volume_id))
        try:
            return self.volumes[volume_id]
        except KeyError:
            raise NotFound(f"volume {volume_id} not found") from None

    def list_owned(self):
        self.calls.append(("list_owned",))
        return [v for v in self.volumes.values() if v.owned and POOL_KEY not in v.metadata]

    def list_tagged(self, key, value=None):
        self.calls.append(("list_tagged", key, value))
        return [v for v in self.volumes.values()
                if key in v.metadata and (value is None or v.metadata[key] == value)]

    def create(self, spec):
        self.calls.append(("create", spec.name))
        vol = self.add_volume(spec.name, spec.size_gb, fstype=spec.fstype)
        vol = _replace(vol, volume_type=spec.volume_type, availability_zone=spec.availability_zone,
                       metadata={**vol.metadata, **spec.extra_metadata})
        self.volumes[vol.id] = vol
        return vol

    def rename(self, volume_id, name):
        """For tests: what another host's half-done claim leaves (fuxi itself renames
        only through rename_and_replace_metadata)."""
        self.calls.append(("rename", volume_id, name))
        self.volumes[volume_id] = _replace(self.get(volume_id), name=name)

    def rename_and_replace_metadata(self, volume_id, name, metadata):
        """One call, as Cinder's volume update: new name, and `metadata` replaces it all."""
        self.calls.append(("rename_and_replace_metadata", volume_id, name))
        self.volumes[volume_id] = _replace(self.get(volume_id), name=name, metadata=dict(metadata))
        return self.volumes[volume_id]

    def wait_for_status(self, volume_id, wanted, timeout, check_first=True):
        """Cinder's work is done at once here: a volume still creating is made when waited for."""
        self.calls.append(("wait_for_status", volume_id, wanted))
        vol = self.get(volume_id)
        if vol.status == "creating":
            vol = self.volumes[volume_id] = _replace(vol, status="available")
        if vol.status != wanted:
            raise CloudError(f"volume {volume_id} went to status {vol.status!r} instead of {wanted!r}")
        return vol

    def extend(self, volume, new_size_gb, timeout=None):
        """Cinder's os-extend, done at once; refused as Cinder refuses."""
        self.calls.append(("extend", volume.id, new_size_gb))
        vol = self.get(volume.id)
        if new_size_gb <= vol.size_gb:
            raise Conflict(f"Cinder refused to extend volume {vol.id}: new size must be greater than current size")
        if vol.status not in ("available", "in-use"):
            raise Conflict(f"Cinder refused to extend volume {vol.id}: it is {vol.status}")
        self.volumes[vol.id] = _replace(vol, size_gb=new_size_gb)
        return self.volumes[vol.id]

    def update_metadata(self, volume_id, set_items, delete_keys):
        self.calls.append(("update_metadata", volume_id))
        vol = self.get(volume_id)
        meta = {k: v for k, v in {**vol.metadata, **set_items}.items() if k not in delete_keys}
        self.volumes[volume_id] = _replace(vol, metadata=meta)

    def reserve(self, volume_id):
        """An attachment without a connector: granted to one caller only, as Cinder does."""
        self.calls.append(("reserve", volume_id))
        with self._lock:
            vol = self.get(volume_id)
            if vol.status != "available":
                raise Conflict(f"volume {volume_id} is taken ({vol.status})")
            attachment_id = str(uuid.uuid4())
            self.attachments[attachment_id] = volume_id
            # Real Cinder lists no attachment on a volume that is only reserved.
            self.volumes[volume_id] = _replace(vol, status="reserved")
        return attachment_id

    def release(self, attachment_id):
        self.delete_attachment(attachment_id)

    def release_leftover_reservations(self):
        return []  # the fake journals no reservations (storage_core.reservations is tested on its own)

    def delete(self, volume):
        self.calls.append(("delete", volume.id))
        current = self.volumes.get(volume.id)
        if current and current.attachments:
            raise Conflict(f"volume {volume.id} is attached")
        self.volumes.pop(volume.id, None)

    def create_attachment(self, volume_id, connector, instance_uuid=None, mode="rw"):
        self.calls.append(("create_attachment", volume_id))
        vol = self.volumes.get(volume_id)
        if vol is None:
            raise NotFound(f"volume {volume_id} not found")
        if vol.status != "available":
            raise Conflict(f"volume {volume_id} is {vol.status}")
        attachment_id = str(uuid.uuid4())
        # Flat, as the attachments API returns it.
        info = {"driver_volume_type": "local", "device_path": f"/dev/fake-{volume_id[:8]}",
                "attachment_id": attachment_id}
        self.attachments[attachment_id] = volume_id
        self.volumes[volume_id] = _replace(
            vol, status="reserved",
            attachments=(CloudAttachment(attachment_id, connector.get("host"), instance_uuid,
                                         connector.get("mountpoint")),),
        )
        return attachment_id, info

    def complete_attachment(self, attachment_id):
        self.calls.append(("complete_attachment", attachment_id))
        volume_id = self.attachments[attachment_id]
        self.volumes[volume_id] = _replace(self.volumes[volume_id], status="in-use")

    def delete_attachment(self, attachment_id):
        self.calls.append(("delete_attachment", attachment_id))
        volume_id = self.attachments.pop(attachment_id, None)
        if volume_id and volume_id in self.volumes:
            self.volumes[volume_id] = _replace(self.volumes[volume_id], status="available", attachments=())


def _replace(vol, **changes):
    return CloudVolume(**{**vol.__dict__, **changes})


class FakeAttacher:
    """Attaches by asking the backend only; the device path is made up."""

    mode = "fake"

    def __init__(self, backend):
        self._backend = backend
        self.fail_connect = False
        self.made = {}  # attachment id -> volume id, of every attachment this host made
        self.rescans = []  # (device, wanted bytes) of every rescan after an extend

    def attach(self, volume, journal):
        attachment_id, info = self._backend.create_attachment(volume.id, {"host": "fakehost"})
        self.made[attachment_id] = volume.id
        pending = HostAttachment(volume.id, attachment_id, info)
        journal(pending)
        if self.fail_connect:
            self._backend.delete_attachment(attachment_id)
            raise AttachError("fake connect failure")
        self._backend.complete_attachment(attachment_id)
        return HostAttachment(volume.id, attachment_id, info, info["device_path"])

    def attached_here(self, volume):
        return False

    def detach(self, attachment):
        self._backend.delete_attachment(attachment.attachment_id)

    def rescan(self, attachment, wanted_bytes):
        self.rescans.append((attachment.device_path, wanted_bytes))
        return wanted_bytes

    def host_attachments(self, volume_id=None):
        return [(vid, aid) for aid, vid in self.made.items()
                if aid in self._backend.attachments and volume_id in (None, vid)]

    def release_leftover(self, volume_id, attachment_id):
        self._backend.delete_attachment(attachment_id)


class FakeFilesystems:
    """Devices and mounts in memory: which devices hold which file system, what is mounted."""

    def __init__(self):
        self.formatted = {}  # device -> fstype
        self.mounted = {}  # mountpoint -> device
        self.mkfs_calls = []
        self.fail_mount = False
        self.grown = []  # (device, mountpoint) of every file system grown
        self.behind = set()  # devices whose file system is smaller than the device (grown while on no host)
        self._ids = itertools.count()

    def probe(self, device):
        return {"TYPE": self.formatted[device]} if device in self.formatted else {}

    def ensure_filesystem(self, device, wanted_fstype):
        if device not in self.formatted:
            self.mkfs_calls.append((device, wanted_fstype))
            self.formatted[device] = wanted_fstype
        return self.formatted[device]

    def mount(self, device, mountpoint, fstype):
        if self.fail_mount:
            raise FilesystemError(f"fake mount of {device} failed")
        self.mounted[mountpoint] = device

    def smaller_than_device(self, device, fstype):
        return device in self.behind

    def grow_unmounted(self, device, fstype):
        return False  # grown after the mount, where the fakes record it

    def short_of(self, device, fstype, size_bytes):
        return device in self.behind

    def grow(self, device, mountpoint):
        if self.mounted.get(mountpoint) != device:
            raise FilesystemError(f"{mountpoint} is not mounted; cannot grow its file system")
        self.grown.append((device, mountpoint))
        self.behind.discard(device)

    def move_mount(self, source, mountpoint):
        self.mounted[mountpoint] = self.mounted.pop(source)

    def unmount(self, mountpoint):
        self.mounted.pop(mountpoint, None)

    def is_mounted(self, mountpoint):
        return mountpoint in self.mounted

    def mounted_from(self, device):
        return [mountpoint for mountpoint, mounted in self.mounted.items() if mounted == device]


class FakeManila:
    """A shared-file-system backend held in memory, with ManilaBackend's interface.

    Rules become active at once; `refuse_access_type` makes the driver put
    rules of that type in error, as a real driver does for a type it lacks.
    """

    def __init__(self, available=True):
        self.shares = {}
        self.rules_by_share = {}
        self.available = available
        self.refuse_access_type = None
        self.calls = []

    def unavailable_reason(self):
        return None if self.available else "no Manila endpoint in the fake catalog"

    def add_share(self, name, proto="NFS", size_gb=1, owned=True, status="available", metadata=None):
        meta = {OWNER_KEY: OWNER_VALUE} if owned else {}
        meta.update(metadata or {})
        share = CloudShare(
            id=str(uuid.uuid4()), name=name, size_gb=size_gb, status=status, proto=proto,
            created_at=datetime.now(timezone.utc), metadata=meta,
        )
        self.shares[share.id] = share
        self.rules_by_share[share.id] = []
        return share

    def find(self, name):
        self.calls.append(("find", name))
        found = [s for s in self.shares.values() if s.name == name]
        if len(found) > 1:
            raise Conflict(f"{len(found)} shares named {name!r}")
        return found[0] if found else None

    def get(self, share_id):
        self.calls.append(("get", share_id))
        try:
            return self.shares[share_id]
        except KeyError:
            raise NotFound(f"share {share_id} not found") from None

    def list_owned(self):
        self.calls.append(("list_owned",))
        return [s for s in self.shares.values() if s.owned]

    def create(self, spec):
        self.calls.append(("create", spec.name))
        share = self.add_share(spec.name, spec.proto, spec.size_gb)
        share = dataclasses.replace(share, share_type=spec.share_type, availability_zone=spec.availability_zone)
        self.shares[share.id] = share
        return share

    def delete(self, share):
        self.calls.append(("delete", share.id))
        self.shares.pop(share.id, None)
        self.rules_by_share.pop(share.id, None)

    def adopt(self, share_id, name):
        self.calls.append(("adopt", share_id))
        share = self.get(share_id)
        meta = {**share.metadata, OWNER_KEY: OWNER_VALUE, ADOPTED_FROM_KEY: share.name or ""}
        self.shares[share_id] = dataclasses.replace(share, name=name, metadata=meta)
        return self.shares[share_id]

    def give_back(self, share):
        self.calls.append(("give_back", share.id))
        meta = {k: v for k, v in share.metadata.items() if k not in (OWNER_KEY, ADOPTED_FROM_KEY)}
        self.shares[share.id] = dataclasses.replace(
            share, name=share.metadata.get(ADOPTED_FROM_KEY) or None, metadata=meta)

    def untag(self, share):
        self.calls.append(("untag", share.id))
        meta = {k: v for k, v in share.metadata.items() if k != OWNER_KEY}
        self.shares[share.id] = dataclasses.replace(share, metadata=meta)

    def extend(self, share, new_size_gb):
        self.calls.append(("extend", share.id, new_size_gb))
        current = self.get(share.id)
        if new_size_gb <= current.size_gb or current.status != "available":
            raise Conflict(f"Manila refused to extend share {share.id}")
        self.shares[share.id] = dataclasses.replace(current, size_gb=new_size_gb)
        return self.shares[share.id]

    def rules(self, share_id):
        self.get(share_id)
        return list(self.rules_by_share[share_id])

    def request_access(self, share_id, access_type, access_to, access_level="rw"):
        self.calls.append(("request_access", share_id, access_type, access_to))
        for rule in self.rules(share_id):
            if (rule.access_type, rule.access_to) == (access_type, access_to):
                return rule
        key = "QVFCZmFrZWtleWZha2VrZXk9PQ==" if access_type == "cephx" else None
        rule = AccessRule(str(uuid.uuid4()), access_type, access_to, access_level, "queued_to_apply", key)
        self.rules_by_share[share_id].append(rule)
        return rule

    def wait_access_active(self, share_id, rule):
        if rule.access_type == self.refuse_access_type:
            raise CloudError(f"fake driver refused {rule.access_type} access")
        active = dataclasses.replace(rule, state="active")
        self.rules_by_share[share_id] = [active if r.id == rule.id else r for r in self.rules(share_id)]
        return active

    def revoke(self, share_id, rule_id):
        self.calls.append(("revoke", share_id, rule_id))
        self.rules_by_share[share_id] = [r for r in self.rules(share_id) if r.id != rule_id]

    def export_locations(self, share_id):
        share = self.get(share_id)
        return [ExportLocation(f"fake-server:/exports/{share.id}", preferred=True)]


class FakeShareMounter:
    """Mounts shares in a FakeFilesystems' table; records what it was asked."""

    def __init__(self, filesystems):
        self._fs = filesystems
        self.mounts = []
        self.forgotten_keys = []
        self.fail_mount = False

    def mount(self, proto, export_path, mountpoint, rule=None):
        self.mounts.append((proto, export_path, mountpoint, rule.access_to if rule else None))
        if self.fail_mount:
            raise FilesystemError(f"fake {proto} mount of {export_path} failed")
        self._fs.mounted[mountpoint] = export_path

    def unmount(self, mountpoint):
        self._fs.unmount(mountpoint)

    def forget_key(self, rule_id):
        self.forgotten_keys.append(rule_id)


@dataclasses.dataclass
class FakeParts:
    """A VolumeService on fakes, and the fakes, for tests to steer and inspect."""

    service: object
    cinder: FakeCinder
    manila: FakeManila
    filesystems: FakeFilesystems
    attacher: object
    mounter: FakeShareMounter


def fake_volume_service(directory, limits=None, shares=None, host=None, default_backend="cinder",
                        cinder=None, attacher=None, pools=(), binds_mounts=False):
    """A VolumeService with a Cinder and a Manila kind on in-memory fakes, state under `directory`.

    `cinder` and `attacher` replace the fake ones (e.g. a NovaAttacher on FakeNova).
    """
    limits = limits or VolumeLimits(max_size_gb=10)
    shares = shares or ShareConfig()
    host = host or HostIdentity(name="host-a", ip="192.0.2.10")
    cinder = cinder or FakeCinder()
    manila, fs = FakeManila(), FakeFilesystems()
    attacher, mounter = attacher or FakeAttacher(cinder), FakeShareMounter(fs)
    keeper = claims = None
    if pools:
        ledger = PoolLedger(os.path.join(directory, "state.db"))
        filler = PoolFiller(cinder, attacher, fs, ledger, os.path.join(directory, "pool"), host.name)
        claims = PoolClaims(pools, cinder, fs, ledger)
        keeper = PoolKeeper(pools, filler, claims, ledger, cinder, fs, host.name)
    service = VolumeService(
        pools=keeper,
        kinds=[CinderVolumes(cinder, attacher, fs, limits, claims, binds_mounts=binds_mounts),
               ManilaShares(manila, mounter, HostAccess.for_host(host, shares), limits, shares)],
        filesystems=fs,
        state=StateStore(os.path.join(directory, "state.db")),
        mount_root=os.path.join(directory, "mounts"),
        lock_dir=os.path.join(directory, "locks"),
        default_backend=default_backend,
    )
    return FakeParts(service, cinder, manila, fs, attacher, mounter)


class FakeClock:
    """A clock that moves only when slept on; at(t, fn) runs fn once time reaches t."""

    def __init__(self, now=0.0):
        self.now = now
        self.sleeps = []
        self._timers = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        due = [t for t in self._timers if t[0] <= self.now]
        self._timers = [t for t in self._timers if t[0] > self.now]
        for _, fn in sorted(due, key=lambda t: t[0]):
            fn()

    def at(self, when, fn):
        self._timers.append((when, fn))


def _version(text):
    major, minor = text.split(".")
    return int(major), int(minor)


class FakeNova:
    """Nova's volume attachments over a FakeCinder, with NovaBackend's interface.

    Like Nova it reserves the volume before answering ("attaching"); the
    volume becomes "in-use" at once, or, with auto_settle=False, when the test
    calls settle(). on_attach(server_id, volume_id, device) lets a test make
    the guest's disk appear. The device it reports is deliberately a guess.
    """

    def __init__(self, cinder, max_microversion="2.89", auto_settle=True):
        self.cinder = cinder
        self.max_microversion = max_microversion
        self.auto_settle = auto_settle
        self.calls = []
        self.on_attach = None
        self.fail_in_compute = False  # the attach fails after Nova answered: back to available
        self._letters = iter("bcdefghijklmnopqrstuvwxyz")
        self._attachments = {}  # (server_id, volume_id) -> ServerVolumeAttachment

    def attach_volume(self, server_id, volume_id, multiattach=False):
        # openstacksdk sends the highest version both sides know; 2.60 is needed for multiattach.
        self.calls.append(("attach_volume", server_id, volume_id, self.max_microversion))
        if multiattach and _version(self.max_microversion) < (2, 60):
            raise CloudError("attaching a multiattach volume needs compute API microversion 2.60")
        vol = self.cinder.volumes.get(volume_id)
        if vol is None:
            raise NotFound(f"volume {volume_id} not found")
        if (server_id, volume_id) in self._attachments:
            raise Conflict(f"volume {volume_id} is already attached to server {server_id}")
        if vol.status != "available" and not (vol.multiattach and vol.status == "in-use"):
            raise Conflict(f"volume {volume_id} is {vol.status}")
        att = ServerVolumeAttachment(server_id, volume_id, str(uuid.uuid4()), f"/dev/vd{next(self._letters)}")
        self._attachments[(server_id, volume_id)] = att
        others = vol.attachments
        status = "in-use" if others else "attaching"
        self.cinder.volumes[volume_id] = _replace(
            vol, status=status, attachments=others + (CloudAttachment(att.attachment_id, None, server_id),)
        )
        if self.fail_in_compute:
            self._drop(server_id, volume_id)
        elif self.auto_settle:
            self.settle(volume_id)
        if self.on_attach and not self.fail_in_compute:
            self.on_attach(server_id, volume_id, att.device)
        return att

    def settle(self, volume_id):
        """The hypervisor finished: the volume is in-use."""
        vol = self.cinder.volumes[volume_id]
        self.cinder.volumes[volume_id] = _replace(vol, status="in-use")

    def detach_volume(self, server_id, volume_id):
        self.calls.append(("detach_volume", server_id, volume_id))
        self._drop(server_id, volume_id)

    def _drop(self, server_id, volume_id):
        if self._attachments.pop((server_id, volume_id), None) is None:
            return  # already gone: like NovaBackend, not an error
        vol = self.cinder.volumes.get(volume_id)
        if vol is None:
            return
        left = tuple(a for a in vol.attachments if a.server_id != server_id)
        self.cinder.volumes[volume_id] = _replace(vol, status="in-use" if left else "available", attachments=left)

    def volume_attachments(self, server_id):
        self.calls.append(("volume_attachments", server_id))
        return [a for (s, _), a in self._attachments.items() if s == server_id]


class FakeDeviceFinder:
    """DeviceFinder's interface: answers from a table volume id -> device path, else AttachError."""

    def __init__(self, devices=None):
        self.devices = dict(devices or {})
        self.calls = []

    def find(self, volume_id, reported_device=None):
        self.calls.append((volume_id, reported_device))
        try:
            return self.devices[volume_id]
        except KeyError:
            raise AttachError(f"the disk of volume {volume_id} did not appear (fake)") from None


@contextlib.contextmanager
def loopback_only():
    """Within it, connecting a socket anywhere but loopback fails at once.

    A guard for tests of code with real network defaults (the metadata
    service at 169.254.169.254): a forgotten setting fails the test instead
    of sending packets off the machine.
    """
    original = socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise ConnectionRefusedError(f"test guard: no connections to {host} (loopback only)")
        return original(sock, address)

    socket.socket.connect = connect
    try:
        yield
    finally:
        socket.socket.connect = original
