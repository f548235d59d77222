"""The clouds the suite runs on: our devcloud (attaching bare metal, or through
its emulated Nova), and real Keystone + Cinder from PyPI.

Every functional and e2e test of the Cinder path takes a `cloud_kind`
parameter, so one suite runs on all of them (FUXI_CLOUDS=devcloud narrows a
local run; strict CI runs refuse to narrow it; a test module may name the kinds
it is about in CLOUD_KINDS). The real cloud is started once per session by
contrib/realcloud/realcloud.py; between tests its project is emptied.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import openstack

from fuxi.devcloud_process import DevcloudProcess

REPO = Path(__file__).resolve().parents[1]
CLOUD_KINDS = ("devcloud", "devcloud-nova", "realcloud")
# Every plugin the suite starts gets a metadata URL on loopback (a closed port
# unless devcloud serves it): no test may ever reach the link-local default.
NO_METADATA_SERVICE = "http://127.0.0.1:9"
BAREMETAL = {"attach_mode": "baremetal", "metadata_url": NO_METADATA_SERVICE}
REALCLOUD_SCRIPT = REPO / "contrib" / "realcloud" / "realcloud.py"


def selected_cloud_kinds() -> list[str]:
    wanted = [k.strip() for k in os.environ.get("FUXI_CLOUDS", ",".join(CLOUD_KINDS)).split(",") if k.strip()]
    unknown = [k for k in wanted if k not in CLOUD_KINDS]
    if unknown:
        raise ValueError(f"FUXI_CLOUDS names unknown clouds {unknown}; known: {', '.join(CLOUD_KINDS)}")
    return wanted


class Cloud:
    """A cloud the plugin reaches through a clouds.yaml entry, plus an SDK view for checks."""

    def __init__(self, kind, clouds_yaml, cloud_name, volumes_root, plugin_options=None):
        self.kind = kind
        # fuxi.conf lines this cloud needs beyond `cloud =` (the Nova path's host view).
        self.plugin_options = dict(plugin_options or {})
        self.clouds_yaml = str(clouds_yaml)
        self.cloud_name = cloud_name
        # Loop devices of this cloud's volumes are backed by files under here.
        self.root = str(volumes_root)
        self.sdk = connect(self.clouds_yaml, cloud_name)

    def env(self) -> dict:
        return {"OS_CLIENT_CONFIG_FILE": self.clouds_yaml}

    def volumes_named(self, name):
        return [v for v in self.sdk.block_storage.volumes(details=True, name=name) if v.name == name]

    def attachments_of(self, volume_id):
        return list(self.sdk.block_storage.attachments(volume_id=volume_id))

    def has_manila(self) -> bool:
        try:
            self.sdk.shared_file_system.get_endpoint()
        except Exception:  # no endpoint in the catalog: keystoneauth's or the SDK's error
            return False
        return True

    def shares_named(self, name):
        return [s for s in self.sdk.shared_file_system.shares(details=True) if s.name == name]

    def rules_of(self, share_id):
        return [(r.access_type, r.access_to) for r in self.sdk.shared_file_system.access_rules(share_id)]

    def empty_project(self, timeout=60) -> list[str]:
        """Delete every share, backup, snapshot, attachment and volume of the
        project; return what was left over.

        Backups and snapshots go first: a volume that has snapshots cannot be
        deleted, nor one that is being backed up or restored into. Each waits
        for what is in flight (a backup being created or restored, a snapshot
        being created) to settle before it is deleted."""
        leftovers = self._empty_shares(timeout) if self.has_manila() else []
        bs = self.sdk.block_storage
        deadline = time.monotonic() + timeout
        leftovers += self._delete_all(
            "backups", lambda: bs.backups(details=True),
            lambda b: bs.delete_backup(b.id, ignore_missing=True), deadline)
        leftovers += self._delete_all(
            "snapshots", lambda: bs.snapshots(details=True),
            lambda s: bs.delete_snapshot(s.id, ignore_missing=True), deadline)
        for vol in list(bs.volumes(details=True)):
            leftovers.append(vol.name or vol.id)
            for att in bs.attachments(volume_id=vol.id):
                bs.delete_attachment(att.id, ignore_missing=True)
        pending = {v.id for v in bs.volumes(details=True)}
        while pending and time.monotonic() < deadline:
            for vol in list(bs.volumes(details=True)):
                if vol.status in ("available", "error"):
                    bs.delete_volume(vol.id, ignore_missing=True)
            time.sleep(0.3)
            pending = {v.id for v in bs.volumes(details=True)}
        if pending:
            raise AssertionError(f"could not empty the project of {self.kind}: {pending} remain")
        return leftovers

    def _delete_all(self, what, listing, delete, deadline) -> list[str]:
        """Delete each listed resource once it is `available` or `error`
        (Cinder refuses to delete a backup or snapshot in any other status),
        until none is left."""
        leftovers = [r.name or r.id for r in listing()]
        requested = set()
        while True:
            current = list(listing())
            if not current:
                return leftovers
            for res in current:
                if res.status in ("available", "error") and res.id not in requested:
                    try:
                        delete(res)
                    except openstack.exceptions.BadRequestException:
                        continue  # its status moved on since the listing: next round
                    requested.add(res.id)
                elif res.status == "error_deleting":
                    raise AssertionError(f"{self.kind}: could not delete {what[:-1]} {res.id} (error_deleting)")
            if time.monotonic() > deadline:
                raise AssertionError(f"could not delete the {what} of {self.kind}: "
                                     f"{[(r.id, r.status) for r in current]} remain")
            time.sleep(0.3)

    def _empty_shares(self, timeout) -> list[str]:
        sfs = self.sdk.shared_file_system
        leftovers = []
        for share in list(sfs.shares(details=True)):
            leftovers.append(share.name or share.id)
            sfs.delete_share(share.id, ignore_missing=True)  # its access rules go with it
        deadline = time.monotonic() + timeout
        while list(sfs.shares()) and time.monotonic() < deadline:
            time.sleep(0.2)
        pending = [s.id for s in sfs.shares()]
        if pending:
            raise AssertionError(f"could not delete the shares of {self.kind}: {pending} remain")
        return leftovers


def connect(clouds_yaml, cloud_name):
    config = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud=cloud_name))



def start_devcloud(workdir, nova=False, share_args=()) -> tuple[DevcloudProcess, Cloud]:
    """devcloud in its own process; with nova=True fuxi attaches through its Nova.

    share_args: devcloud flags for its Manila backends (see
    tests.share_servers.devcloud_share_args)."""
    workdir = Path(workdir)
    devcloud = DevcloudProcess(str(workdir / "devcloud"), clouds_yaml=str(workdir / "clouds.yaml"),
                               extra_args=share_args)
    devcloud.start()
    options = {"attach_mode": "nova", **devcloud.host_defaults()} if nova else BAREMETAL
    kind = "devcloud-nova" if nova else "devcloud"
    cloud = Cloud(kind, workdir / "clouds.yaml", "devcloud", workdir / "devcloud", options)
    cloud.devcloud = devcloud.ready  # url, server_id, disk_root ... for tests that steer it
    return devcloud, cloud


class RealCloudStack:
    """Keystone + Cinder + Manila (+ RabbitMQ, MariaDB) from PyPI, run by
    contrib/realcloud/realcloud.py.

    glusterfs / cephfs: the share servers (tests.share_servers.GlusterServer /
    CephServer) whose mounted roots Manila's test share driver puts GLUSTERFS
    and CEPHFS shares in; without one, that protocol's shares end in error.
    """

    def __init__(self, directory, token_expiration=None, glusterfs=None, cephfs=None):
        self.directory = Path(directory)
        self.token_expiration = token_expiration
        self.glusterfs = glusterfs
        self.cephfs = cephfs
        self.ready = None

    def share_backend_args(self) -> list[str]:
        """realcloud.py start flags for the share servers (devcloud's layout on both)."""
        args = []
        if self.glusterfs is not None:
            args += ["--glusterfs-server", self.glusterfs.server,
                     "--glusterfs-volume", self.glusterfs.volume,
                     "--glusterfs-mount", str(self.glusterfs.root_mount)]
        if self.cephfs is not None:
            args += ["--cephfs-mon", self.cephfs.mon,
                     "--cephfs-mount", str(self.cephfs.root_mount)]
        return args

    def _run(self, *args, timeout=1200):
        argv = [sys.executable, str(REALCLOUD_SCRIPT), *args, "--dir", str(self.directory)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        sys.stderr.write(result.stderr[-4000:])
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
            )
        return result

    def start(self):
        self._run("install")
        extra = ["--token-expiration", str(self.token_expiration)] if self.token_expiration else []
        self._run("start", *extra, *self.share_backend_args())
        with open(self.directory / "ready.json", encoding="utf-8") as f:
            self.ready = json.load(f)
        return self

    def stop(self):
        self._run("stop", timeout=300)

    def cloud(self, name="realcloud") -> Cloud:
        return Cloud(
            "realcloud", self.ready["clouds_yaml"], name, self.ready["volumes_dir"], BAREMETAL,
        )

    def log_path(self, service) -> Path:
        return self.directory / "logs" / f"{service}.log"
