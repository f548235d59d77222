"""Nova's compute service: servers, their volume attachments, attach and detach.

Nova records a volume attachment as a block device mapping (BDM); the flow
follows Nova with Cinder's attachments API, and all Cinder work goes through
devcloud's own volume service (backend.py), so its status rules apply:

* attach, in the API call: refuse a volume attached elsewhere (unless
  multiattach) or multiattach below 2.60, pick a device name, create a Cinder
  attachment for the server without a connector (volume ``reserved``) and
  answer at once;
* then on the compute host (a worker thread): update the attachment with the
  host's connector (Cinder exports: a loop device is bound, ``attaching``),
  hot-plug the disk into the guest (its udev links follow after link_delay),
  complete the attachment (``in-use``);
* detach, in the API call: Cinder's begin_detaching (``detaching``), 202;
  then unplug (links go) and delete the Cinder attachment (the loop device
  is released with the last export, ``available``).

BDM statuses are devcloud's own bookkeeping: ``reserving`` -> ``attaching``
-> ``attached`` -> ``detaching`` -> gone. Whatever a stop or crash cut short
is found by status at start-up and finished then.
"""

import hashlib
import logging
import re
import threading
import uuid

from storage_core.devcloud.backend import CinderError, NotFound
from storage_core.devcloud.hypervisor import GuestDisk
from storage_core.devcloud.metadata import meta_data
from storage_core.devcloud.tasks import Workers
from storage_core.devcloud.web import cinder_time
from storage_core.errors import CommandError

LOG = logging.getLogger(__name__)

LOCAL_SERVER_SETTING = "nova.local_server_id"
# PCI slots hot-plugged virtio disks get; lower ones hold the guest's
# built-in devices (bridge, ISA, VGA, NIC, root disk).
FIRST_SLOT, LAST_SLOT = 0x06, 0x1F
LIED_DEVICE = "/dev/vdb"


class ComputeError(Exception):
    """A refusal the API answers Nova-style: ``{"<fault>": {"code", "message"}}``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def server_not_found(server_id):
    return ComputeError(404, f"Instance {server_id} could not be found.")


def _cinder_refusal(exc):
    # Nova wraps a Cinder 400 in InvalidInput, with cinderclient's rendering
    # of it (message, HTTP code, request id) as the reason.
    return ComputeError(400, f"Invalid input received: {exc.message} (HTTP {exc.status}) "
                             f"(Request-ID: req-{uuid.uuid4()})")


def _sanitize_hostname(name):
    # Nova's hostname: lower case, [a-z0-9-] only, no leading/trailing dashes.
    hostname = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return hostname[:63] or "server"


def _device_names():
    # vda is the root disk; then vdb..vdz, vdaa..vdzz as libvirt counts.
    letters = "abcdefghijklmnopqrstuvwxyz"
    yield from (f"/dev/vd{c}" for c in letters[1:])
    yield from (f"/dev/vd{a}{b}" for a in letters for b in letters)


class ComputeService:
    def __init__(self, store, volumes, hypervisor, scheduler, options, project_id, user_id,
                 workers=None):
        """``options`` is a callable returning the resolved HypervisorOptions;
        ``workers`` runs the compute host's jobs (tests may run them inline)."""
        self._store = store
        self._volumes = volumes
        self._hypervisor = hypervisor
        self._scheduler = scheduler
        self._options = options
        self.project_id = project_id
        self._user_id = user_id
        self._workers = workers or Workers()
        # One guest view update at a time: two interleaved ones could leave
        # the older view on disk.
        self._guest_lock = threading.Lock()

    # -- servers -------------------------------------------------------------

    def ensure_local_server(self, name) -> dict:
        """The server fuxi's host is, created once; renamed to ``name`` if needed."""
        with self._store.transaction():
            server_id = self._store.get_setting(LOCAL_SERVER_SETTING)
            server = self._store.get("server", server_id) if server_id else None
            if server is None:
                server = self._new_server(name, local=True)
                self._store.set_setting(LOCAL_SERVER_SETTING, server["id"])
            elif server["name"] != name:
                server.update(name=name, updated_at=cinder_time())
                self._store.put("server", server)
            return server

    def local_server(self) -> dict | None:
        server_id = self._store.get_setting(LOCAL_SERVER_SETTING)
        return self._store.get("server", server_id) if server_id else None

    def create_server(self, name) -> dict:
        with self._store.transaction():
            return self._new_server(name, local=False)

    def _new_server(self, name, local):
        now = cinder_time()
        server = {
            "id": str(uuid.uuid4()),
            "name": name,
            "hostname": _sanitize_hostname(name),
            "project_id": self.project_id,
            "user_id": self._user_id,
            # Every server on a compute host of its own, so two servers are
            # two hosts (what multi-host tests want).
            "host": f"compute-{len(self._store.list('server')) + 1}",
            "index": len(self._store.list("server")) + 1,
            "local": local,
            "created_at": now,
            "updated_at": now,
        }
        self._store.put("server", server)
        return server

    def get_server(self, server_id) -> dict:
        server = self._store.get("server", server_id)
        if server is None or server["project_id"] != self.project_id:
            raise server_not_found(server_id)
        return server

    def get_server_or_none(self, server_id) -> dict | None:
        try:
            return self.get_server(server_id)
        except ComputeError:
            return None

    def list_servers(self) -> list[dict]:
        servers = [s for s in self._store.list("server") if s["project_id"] == self.project_id]
        return sorted(servers, key=lambda s: (s["created_at"], s["id"]), reverse=True)

    # -- attachments (BDMs) --------------------------------------------------

    def bdms_of_server(self, server_id) -> list[dict]:
        bdms = [b for b in self._store.list("bdm") if b["server_id"] == server_id]
        return sorted(bdms, key=lambda b: (b["created_at"], b["id"]))

    def bdms_of_volume(self, volume_id) -> list[dict]:
        return [b for b in self._store.list("bdm") if b["volume_id"] == volume_id]

    def get_bdm(self, server_id, volume_id) -> dict:
        self.get_server(server_id)
        for bdm in self.bdms_of_server(server_id):
            if bdm["volume_id"] == volume_id:
                return bdm
        raise ComputeError(404, f"Instance {server_id} is not attached to volume {volume_id}")

    def _volume(self, volume_id):
        try:
            return self._volumes.get_volume(self.project_id, volume_id)
        except NotFound:
            raise ComputeError(404, f"Volume {volume_id} could not be found.") from None

    def attach(self, server_id, volume_id, *, tag=None, delete_on_termination=False,
               supports_multiattach=False) -> dict:
        """Nova's attach_volume API part; the compute part runs in the background."""
        server = self.get_server(server_id)
        volume = self._volume(volume_id)
        options = self._options()
        with self._store.transaction():
            others = self.bdms_of_volume(volume_id)
            if others and not volume.get("multiattach"):
                on = " ".join(b["server_id"] for b in others)
                raise ComputeError(400, f"Invalid volume: volume {volume_id} is already "
                                        f"attached to instances: {on}")
            if any(b["server_id"] == server_id for b in others):
                raise ComputeError(400, f"Invalid volume: volume {volume_id} already attached")
            if volume.get("multiattach") and not supports_multiattach:
                raise ComputeError(400, "Multiattach volumes are only supported starting with "
                                        "compute API version 2.60.")
            mine = self.bdms_of_server(server_id)
            used = {b["device"] for b in mine}
            bdm = {
                "id": str(uuid.uuid4()),
                "server_id": server_id,
                "volume_id": volume_id,
                "attachment_id": None,
                "device": LIED_DEVICE if options.lie_about_device else next(
                    d for d in _device_names() if d not in used),
                "tag": tag,
                "delete_on_termination": bool(delete_on_termination),
                "pci_address": _pci_address(server_id, volume_id,
                                            {b["pci_address"] for b in mine}),
                "status": "reserving",
                "plugged": False,
                "linked": False,
                "created_at": cinder_time(),
            }
            self._store.put("bdm", bdm)
        try:
            attachment = self._volumes.create_attachment(
                self.project_id, volume_id, instance_uuid=server["id"], connector=None,
                mode="rw")
        except NotFound:
            self._store.delete("bdm", bdm["id"])
            raise ComputeError(404, f"Volume {volume_id} could not be found.") from None
        except CinderError as exc:
            self._store.delete("bdm", bdm["id"])
            raise _cinder_refusal(exc) from None
        with self._store.transaction():
            bdm.update(attachment_id=attachment["id"], status="attaching")
            self._store.put("bdm", bdm)
        self._workers.spawn(self._finish_attach, bdm["id"])
        return bdm

    def detach(self, server_id, volume_id) -> None:
        """Nova's detach_volume API part; the compute part runs in the background."""
        self.get_server(server_id)
        volume = self._volume(volume_id)
        bdm = self.get_bdm(server_id, volume_id)
        with self._store.transaction():
            bdm = self._store.get("bdm", bdm["id"])
            if bdm is None:
                raise ComputeError(404, f"Instance {server_id} is not attached to volume "
                                        f"{volume_id}")
            if bdm["status"] in ("reserving", "attaching"):
                # Nova's check_detach: Cinder does not list it as attached yet.
                if volume["status"] == "available":
                    message = f"Invalid volume: volume {volume_id} already detached"
                else:
                    message = "Invalid volume: Volume must be attached in order to detach."
                raise ComputeError(400, message)
            try:
                self._volumes.begin_detaching(self.project_id, volume_id)
            except CinderError as exc:
                raise _cinder_refusal(exc) from None
            bdm["status"] = "detaching"
            self._store.put("bdm", bdm)
        self._workers.spawn(self._finish_detach, bdm["id"])

    # -- the compute host's part ---------------------------------------------

    def _finish_attach(self, bdm_id):
        bdm = self._store.get("bdm", bdm_id)
        if bdm is None or bdm["status"] != "attaching" or self._workers.stopping.is_set():
            return
        server = self._store.get("server", bdm["server_id"])
        project = self.project_id
        try:
            attachment = self._volumes.get_attachment(project, bdm["attachment_id"])
            if attachment["connection_info"] is None:
                attachment = self._volumes.update_attachment(
                    project, bdm["attachment_id"], _connector(server, bdm))
            if self._workers.stopping.is_set():
                return  # bound, not plugged: the next start goes on from here
            self._hotplug(bdm_id)
            if attachment["status"] != "attached":
                self._volumes.complete_attachment(project, bdm["attachment_id"])
        except NotFound:
            LOG.warning("attachment of volume %s to %s vanished while attaching",
                        bdm["volume_id"], bdm["server_id"])
            self._forget(bdm_id)
            return
        except (CinderError, CommandError, OSError):
            LOG.exception("attaching volume %s to %s failed; rolling back",
                          bdm["volume_id"], bdm["server_id"])
            self._unplug(bdm_id)
            try:
                self._volumes.delete_attachment(project, bdm["attachment_id"])
            except NotFound:
                pass
            self._forget(bdm_id)
            return
        with self._store.transaction():
            bdm = self._store.get("bdm", bdm_id)
            if bdm is None or bdm["status"] != "attaching":
                return
            bdm["status"] = "attached"
            self._store.put("bdm", bdm)
        LOG.info("volume %s attached to server %s as %s", bdm["volume_id"], bdm["server_id"],
                 bdm["device"])

    def _hotplug(self, bdm_id):
        """The disk appears in the guest; udev's links follow after link_delay."""
        delay = self._options().link_delay
        with self._store.transaction():
            bdm = self._store.get("bdm", bdm_id)
            if bdm is None:
                return
            bdm.update(plugged=True, linked=delay == 0)
            self._store.put("bdm", bdm)
        if delay:
            self._scheduler.call_later(delay, self._links_due, bdm_id)
        self.sync_guest()

    def _links_due(self, bdm_id):
        with self._store.transaction():
            bdm = self._store.get("bdm", bdm_id)
            if bdm is None or not bdm["plugged"] or bdm["linked"]:
                return
            bdm["linked"] = True
            self._store.put("bdm", bdm)
        self.sync_guest()

    def _unplug(self, bdm_id):
        with self._store.transaction():
            bdm = self._store.get("bdm", bdm_id)
            if bdm is None:
                return
            bdm.update(plugged=False, linked=False)
            self._store.put("bdm", bdm)
        self.sync_guest()

    def _forget(self, bdm_id):
        self._store.delete("bdm", bdm_id)
        self.sync_guest()

    def _finish_detach(self, bdm_id):
        bdm = self._store.get("bdm", bdm_id)
        if bdm is None or bdm["status"] != "detaching" or self._workers.stopping.is_set():
            return
        # The guest lets go of the disk first, then Cinder unexports it.
        self._unplug(bdm_id)
        try:
            self._volumes.delete_attachment(self.project_id, bdm["attachment_id"])
        except NotFound:
            pass
        except CinderError:
            LOG.exception("detaching volume %s from %s failed; it stays attached",
                          bdm["volume_id"], bdm["server_id"])
            self._volumes.roll_detaching(self.project_id, bdm["volume_id"])
            with self._store.transaction():
                bdm = self._store.get("bdm", bdm_id)
                bdm.update(status="attached", plugged=True, linked=True)
                self._store.put("bdm", bdm)
            self.sync_guest()
            return
        self._forget(bdm_id)
        LOG.info("volume %s detached from server %s", bdm["volume_id"], bdm["server_id"])

    # -- the guest's view ----------------------------------------------------

    def guest_disks(self, server_id) -> list[GuestDisk]:
        """The disks of ``server_id`` whose udev links exist (or should)."""
        disks = []
        for bdm in self.bdms_of_server(server_id):
            if not (bdm["plugged"] and bdm["linked"]):
                continue
            try:
                attachment = self._volumes.get_attachment(self.project_id, bdm["attachment_id"])
            except NotFound:
                continue
            info = attachment["connection_info"] or {}
            if info.get("device_path"):
                disks.append(GuestDisk(bdm["volume_id"], bdm["pci_address"],
                                       info["device_path"]))
        return disks

    def meta_data(self, server) -> dict:
        return meta_data(server, self.bdms_of_server(server["id"]))

    def sync_guest(self, old_disk_root=None) -> None:
        """Make the local guest's links and config drive match the store."""
        with self._guest_lock:
            server = self.local_server()
            if server is None:
                return
            self._hypervisor.sync(self.guest_disks(server["id"]), self.meta_data(server),
                                  old_disk_root=old_disk_root)

    # -- start and stop ------------------------------------------------------

    def recover(self, server_name) -> None:
        """Finish attaches/detaches a stop or crash cut short; rebuild the guest view.

        Runs after the volume service's recovery, so loop devices are bound
        again and connection infos name the current ones.
        """
        self.ensure_local_server(server_name)
        attachments = self._volumes.list_attachments(self.project_id)
        for bdm in self._store.list("bdm"):
            status = bdm["status"]
            if status == "reserving":
                # Stopped between our record and Cinder's answer: adopt the
                # attachment Cinder made, if it made one.
                made = [a for a in attachments if a["volume_id"] == bdm["volume_id"]
                        and a["instance_uuid"] == bdm["server_id"]]
                if not made:
                    self._store.delete("bdm", bdm["id"])
                    continue
                bdm.update(attachment_id=made[0]["id"], status="attaching")
                self._store.put("bdm", bdm)
                status = "attaching"
            if status == "attaching":
                self._workers.spawn(self._finish_attach, bdm["id"])
            elif status == "detaching":
                self._workers.spawn(self._finish_detach, bdm["id"])
            elif bdm["plugged"] and not bdm["linked"]:
                self._scheduler.call_later(self._options().link_delay, self._links_due,
                                           bdm["id"])
        self.sync_guest()

    def stop(self) -> None:
        self._workers.stop()


def _connector(server, bdm) -> dict:
    """The compute host's os-brick connector, as Nova sends it to Cinder."""
    return {
        "platform": "x86_64",
        "os_type": "linux",
        "ip": "127.0.0.1",
        "host": server["host"] if server else "compute",
        "multipath": False,
        "enforce_multipath": False,
        "initiator": None,
        "do_local_attach": False,
        # Nova passes its device name along; Cinder keeps it as the mountpoint.
        "mountpoint": bdm["device"],
    }


def _pci_address(server_id, volume_id, used) -> str:
    """A free PCI address, the same one for the same pair whenever it is free."""
    span = LAST_SLOT - FIRST_SLOT + 1
    start = int(hashlib.sha256(f"{server_id}/{volume_id}".encode()).hexdigest(), 16) % span
    for step in range(span):
        address = f"0000:00:{FIRST_SLOT + (start + step) % span:02x}.0"
        if address not in used:
            return address
    raise ComputeError(403, f"The maximum allowed number of disk devices ({span}) to attach "
                            "to a single instance has been exceeded.")
