"""Manila shares: no attach at all. A host is granted an access rule, mounts
the share's export, and drops its rule again after its last unmount.

A share is a shared file system: any number of hosts may mount it at once,
each with its own rule. The rule identifies the host (its address for NFS,
its cephx id for CephFS, its certificate name for GlusterFS), so one host's
last unmount revokes only its own access, and a share is deleted only when
no other host's rule is left on it.
"""

import dataclasses
import logging

from storage_core.config import ShareConfig, VolumeLimits
from storage_core.crashpoints import crash_point
from storage_core.errors import Conflict, FilesystemError, InvalidInput, NotFound, StorageError
from storage_core.kinds import check_new_size, refuse_differences, refuse_other_adoption
from storage_core.models import AccessRule, CloudShare, ShareSpec
from storage_core.options import parse_share_options
from storage_core.state import HostVolume, Phase
from storage_core.timing import step

LOG = logging.getLogger(__name__)

# The access type each protocol's Manila drivers grant (generic/LVM NFS: ip,
# native CephFS: cephx, native GlusterFS: cert).
ACCESS_TYPES = {"NFS": "ip", "CEPHFS": "cephx", "GLUSTERFS": "cert"}


@dataclasses.dataclass(frozen=True)
class HostAccess:
    """Who this host is to Manila, per access type."""

    ip: str
    cephx_id: str
    cert_cn: str

    @classmethod
    def for_host(cls, host, shares: ShareConfig) -> "HostAccess":
        # cephx ids may not contain periods (Manila refuses them).
        default_cephx = "fuxi-" + host.name.split(".")[0]
        return cls(
            ip=host.ip,
            cephx_id=shares.cephx_client_id or default_cephx,
            cert_cn=shares.glusterfs_cert_cn or host.name,
        )

    def access_to(self, access_type) -> str:
        return {"ip": self.ip, "cephx": self.cephx_id, "cert": self.cert_cn}[access_type]


class ManilaShares:
    name = "manila"
    noun = "share"

    def __init__(self, backend, mounter, host_access: HostAccess | None, limits: VolumeLimits,
                 shares: ShareConfig):
        """`host_access`: how this host is granted access; None for a service that
        mounts nothing here (a CSI controller): every access rule is then another
        host's, even one naming this host's address, where a node may mount it."""
        self._backend = backend
        self._mounter = mounter
        self._host = host_access
        self._limits = limits
        self._shares = shares
        self._unavailable = None
        self._checked = False

    def unavailable_reason(self):
        # Asked once: the catalog does not change while we run.
        if not self._checked:
            self._unavailable = self._backend.unavailable_reason()
            self._checked = True
            if self._unavailable:
                LOG.warning("Manila shares are not available: %s", self._unavailable)
        return self._unavailable

    def parse_options(self, name, options) -> ShareSpec:
        return parse_share_options(name, options, self._limits, self._shares)

    # -- cloud records ----------------------------------------------------

    def find(self, name):
        return self._backend.find(name)

    def get(self, share_id):
        return self._backend.get(share_id)

    def list_owned(self):
        return self._backend.list_owned()

    def create(self, spec: ShareSpec, mountpoint=None, journal=None) -> CloudShare:
        if spec.adopt_share_id:
            return self._backend.adopt(spec.adopt_share_id, spec.name)
        return self._backend.create(spec)

    def same_or_conflict(self, existing: CloudShare, spec: ShareSpec) -> CloudShare:
        if spec.adopt_share_id:
            refuse_other_adoption(self.noun, spec.name, existing.id, spec.adopt_share_id)
            return existing
        differences = []
        if existing.size_gb != spec.size_gb:
            differences.append(f"size {existing.size_gb} GiB (asked {spec.size_gb})")
        if existing.proto != spec.proto:
            differences.append(f"proto {existing.proto.lower()} (asked {spec.proto.lower()})")
        if spec.share_type and spec.share_type != existing.share_type:
            differences.append(f"share_type {existing.share_type} (asked {spec.share_type})")
        if spec.availability_zone and existing.availability_zone != spec.availability_zone:
            differences.append(
                f"availability_zone {existing.availability_zone} (asked {spec.availability_zone})"
            )
        refuse_differences(self.noun, spec.name, differences)
        return existing

    def prepare_delete(self, share: CloudShare, doing="removing") -> None:
        """Refuse while another host still has access; drop rules of this host
        that no mount needs (left by a crash between grant and journal)."""
        others = []
        for rule in self._backend.rules(share.id):
            if self._is_mine(rule):
                LOG.warning("share %s: revoking this host's leftover access rule %s", share.name, rule.id)
                self._revoke(share.id, rule.id)
            else:
                others.append(f"{rule.access_to} ({rule.access_type})")
        if others:
            raise Conflict(
                f"share {share.name!r} is still used by {', '.join(sorted(others))}; "
                f"unmount it on those hosts before {doing} it"
            )

    def give_back(self, share: CloudShare) -> None:
        """Forget a share without deleting it: an adopted one gets its old name
        back, one fuxi made keeps its name; fuxi's tags go."""
        if share.adopted:
            self._backend.give_back(share)
        else:
            self._backend.untag(share)

    def delete(self, share: CloudShare) -> None:
        if share.adopted:
            # Adopted, not made, by fuxi: its data was someone's before; give it back whole.
            self._backend.give_back(share)
            return
        self._backend.delete(share)

    # -- this host ----------------------------------------------------------

    def _access_type(self, share: CloudShare) -> str:
        try:
            return ACCESS_TYPES[share.proto]
        except KeyError:
            raise InvalidInput(
                f"share {share.name!r} is a {share.proto} share; fuxi mounts "
                f"{', '.join(p.lower() for p in ACCESS_TYPES)} shares"
            ) from None

    def _is_mine(self, rule: AccessRule) -> bool:
        return (self._host is not None and rule.access_type in ACCESS_TYPES.values()
                and rule.access_to == self._host.access_to(rule.access_type))

    def check_mountable(self, share: CloudShare) -> None:
        if share.status != "available":
            raise Conflict(f"share {share.name!r} is {share.status}; it can be mounted only when available")

    def put_on_host(self, share: CloudShare, name, mountpoint, journal) -> HostVolume:
        access_type = self._access_type(share)
        if self._host is None:
            raise InvalidInput(f"share {name!r}: this service mounts nothing on its host")
        # The intent first: a crash before the rule's id is journaled leaves a
        # record saying which share may hold a rule of ours.
        journal(HostVolume(name=name, volume_id=share.id, phase=Phase.ATTACHING, backend=self.name,
                           mountpoint=mountpoint))
        crash_point("attach.intent_written")
        rule = self._backend.request_access(share.id, access_type, self._host.access_to(access_type))
        crash_point("share.access_requested")
        hv = HostVolume(
            name=name, volume_id=share.id, phase=Phase.ATTACHING, backend=self.name,
            attachment_id=rule.id, mountpoint=mountpoint,
            connection_info={"proto": share.proto, "access_type": rule.access_type,
                             "access_to": rule.access_to},
        )
        journal(hv)
        rule = self._backend.wait_access_active(share.id, rule)
        exports = self._backend.export_locations(share.id)
        hv = dataclasses.replace(hv, phase=Phase.ATTACHED)
        journal(hv)
        failures = []
        # Preferred export first; another path to the same share is worth a try.
        for export in exports:
            try:
                self._mounter.mount(share.proto, export.path, mountpoint, rule)
            except StorageError as exc:
                failures.append(str(exc))
                continue
            crash_point("mount.mounted")
            return dataclasses.replace(
                hv, phase=Phase.MOUNTED, connection_info={**hv.connection_info, "export": export.path})
        raise FilesystemError(
            f"could not mount share {share.name!r} ({share.id}) from any of its exports: "
            + "; ".join(failures)
        )

    def take_off_host(self, hv: HostVolume) -> None:
        if hv.mountpoint:
            self._mounter.unmount(hv.mountpoint)
            crash_point("unmount.unmounted")
        if hv.attachment_id:
            self._revoke(hv.volume_id, hv.attachment_id)
            crash_point("detach.deleted")
            self._mounter.forget_key(hv.attachment_id)
            return
        # Only the intent was journaled: Manila may still have made this host's rule.
        try:
            rules = self._backend.rules(hv.volume_id)
        except NotFound:
            return
        for rule in rules:
            if self._is_mine(rule):
                LOG.warning("share %s: revoking access rule %s, which a crash kept out of the journal",
                            hv.name, rule.id)
                self._revoke(hv.volume_id, rule.id)
                self._mounter.forget_key(rule.id)

    def host_leftovers(self, held_share_ids) -> list:
        # Every rule request is preceded by a journaled intent, so a crash leaves
        # a record to mend from; shares need no sweep of the whole cloud.
        return []

    def release_leftover(self, share_id, rule_id) -> None:
        self._revoke(share_id, rule_id)

    def _revoke(self, share_id, rule_id):
        try:
            self._backend.revoke(share_id, rule_id)
        except NotFound:
            pass  # the share (and every rule on it) is gone already

    def extend(self, share: CloudShare, size_gb, hv=None, hosts_grow_themselves=False) -> CloudShare:
        """Grow the share in Manila; its mounts (here or anywhere) see the new size
        by themselves: there is no host step."""
        check_new_size(self.noun, share, size_gb, self._limits)
        with step("extend", share.name):
            return self._backend.extend(share, size_gb)

    def status(self, share: CloudShare) -> dict:
        return {
            "share_id": share.id,
            "size_gb": share.size_gb,
            "proto": share.proto.lower(),
            "cloud_status": share.status,
            "share_type": share.share_type,
            "availability_zone": share.availability_zone,
            "adopted": share.adopted,
        }

