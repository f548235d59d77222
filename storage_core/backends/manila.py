"""Manila shares, their access rules and export locations through openstacksdk
(shared file system v2).

A share needs no attach: a host is granted an access rule, reads where the
share is exported, and mounts that. Every wait is bounded and polls fast first.
"""

import logging

from openstack import exceptions as sdk_exceptions

from storage_core.backends.cloud_time import parse_cloud_time
from storage_core.backends.sdk_errors import detail, translate_errors
from storage_core.errors import CloudError, Conflict, NotFound, Timeout
from storage_core.models import (
    ADOPTED_FROM_KEY,
    OWNER_KEY,
    OWNER_VALUE,
    AccessRule,
    CloudShare,
    ExportLocation,
    ShareSpec,
)
from storage_core.waits import wait_until

LOG = logging.getLogger(__name__)

_FAILED_SHARE_STATUSES = ("error", "error_deleting", "extending_error")
# The share action "extend" (without the "os-" prefix) exists from 2.7 on.
EXTEND_MICROVERSION = "2.7"
_FAILED_RULE_STATES = ("error",)


def _to_share(share) -> CloudShare:
    return CloudShare(
        id=share.id,
        name=share.name,
        size_gb=int(share.size or 0),
        status=share.status,
        proto=(share.share_protocol or "").upper(),
        created_at=parse_cloud_time(share.created_at),
        metadata=dict(share.metadata or {}),
        share_type=share.share_type_name or share.share_type,
        availability_zone=share.availability_zone,
    )


def _to_rule(rule) -> AccessRule:
    return AccessRule(
        id=rule.id,
        access_type=rule.access_type,
        access_to=rule.access_to,
        access_level=rule.access_level,
        state=rule.state,
        access_key=rule.access_key,
    )


class ManilaBackend:
    def __init__(self, connection, clock=None, create_timeout=110.0, delete_timeout=55.0,
                 access_timeout=55.0):
        self._conn = connection
        self._clock = clock
        self._create_timeout = create_timeout
        self._delete_timeout = delete_timeout
        self._access_timeout = access_timeout

    @property
    def _sfs(self):
        return self._conn.shared_file_system

    def unavailable_reason(self) -> str | None:
        """None when the cloud's catalog offers Manila, else why not."""
        try:
            self._sfs.get_endpoint()
        except Exception as exc:  # keystoneauth's catalog errors have no common base with the SDK's
            return f"the cloud's catalog has no usable Manila endpoint ({exc})"
        return None

    # -- shares ---------------------------------------------------------

    def find(self, name) -> CloudShare | None:
        """The one share called `name`, or None. Two of them is an error."""
        with translate_errors(f"looking up share {name!r}", "Manila"):
            found = [s for s in self._sfs.shares(details=True, name=name) if s.name == name]
        if not found:
            return None
        if len(found) > 1:
            raise Conflict(
                f"Manila holds {len(found)} shares named {name!r} "
                f"({', '.join(s.id for s in found)}); rename or delete the extra ones"
            )
        return _to_share(found[0])

    def get(self, share_id) -> CloudShare:
        with translate_errors(f"reading share {share_id}", "Manila"):
            return _to_share(self._sfs.get_share(share_id))

    def list_owned(self) -> list[CloudShare]:
        # Filtered here: the tag filter of the SDK is not to be trusted (see cinder.py).
        with translate_errors("listing fuxi shares", "Manila"):
            shares = [_to_share(s) for s in self._sfs.shares(details=True)]
        return [s for s in shares if s.owned]

    def create(self, spec: ShareSpec) -> CloudShare:
        attrs = {
            "name": spec.name,
            "size": spec.size_gb,
            "share_proto": spec.proto,
            "metadata": {OWNER_KEY: OWNER_VALUE},
        }
        if spec.share_type:
            attrs["share_type"] = spec.share_type
        if spec.share_network:
            attrs["share_network_id"] = spec.share_network
        if spec.availability_zone:
            attrs["availability_zone"] = spec.availability_zone
        with translate_errors(f"creating share {spec.name!r}", "Manila"):
            try:
                created = self._sfs.create_share(**attrs)
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(f"Manila refused to create share {spec.name!r}: {detail(exc)}") from exc
        LOG.info("created Manila share %s for %s", created.id, spec.name)
        try:
            return self._wait_share(created.id, "available", self._create_timeout)
        except (CloudError, Timeout):
            self._delete_quietly(created.id)
            raise

    def delete(self, share: CloudShare) -> None:
        with translate_errors(f"deleting share {share.name!r} ({share.id})", "Manila"):
            try:
                self._sfs.delete_share(share.id, ignore_missing=True)
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(f"Manila refused to delete share {share.name!r}: {detail(exc)}") from exc

        def gone():
            try:
                current = self.get(share.id)
            except NotFound:
                return True
            if current.status in _FAILED_SHARE_STATUSES:
                raise CloudError(f"deleting share {share.id} failed: status {current.status!r}")
            return False

        wait_until(gone, self._delete_timeout, f"share {share.id} to be deleted", self._clock)

    def adopt(self, share_id, name) -> CloudShare:
        """Make an existing share fuxi's, under `name`; its old name is kept in
        its metadata so that `give_back` can restore it."""
        share = self.get(share_id)
        if share.owned:
            if share.name == name:
                return share
            raise Conflict(
                f"share {share_id} is already the fuxi volume {share.name!r}; use that name"
            )
        if share.status != "available":
            raise Conflict(f"share {share_id} is {share.status}; only an available share can be adopted")
        with translate_errors(f"adopting share {share_id} as {name!r}", "Manila"):
            self._sfs.set_share_metadata(share_id, **{OWNER_KEY: OWNER_VALUE,
                                                      ADOPTED_FROM_KEY: share.name or ""})
            self._sfs.update_share(share_id, display_name=name)
        LOG.info("adopted Manila share %s (was %r) as %s", share_id, share.name, name)
        return self.get(share_id)

    def give_back(self, share: CloudShare) -> None:
        """Undo `adopt`: the share keeps its data and gets its old name back."""
        original = share.metadata.get(ADOPTED_FROM_KEY) or None
        with translate_errors(f"giving back share {share.id}", "Manila"):
            self._sfs.update_share(share.id, display_name=original)
            self._sfs.delete_share_metadata(share.id, [OWNER_KEY, ADOPTED_FROM_KEY])
        LOG.info("gave back Manila share %s as %r, not deleted", share.id, original)

    def untag(self, share: CloudShare) -> None:
        """Forget a share fuxi made without deleting it: its name stays, fuxi's tag goes."""
        with translate_errors(f"untagging share {share.id}", "Manila"):
            self._sfs.delete_share_metadata(share.id, [OWNER_KEY])
        LOG.info("released Manila share %s (%r), not deleted", share.id, share.name)

    def extend(self, share: CloudShare, new_size_gb) -> CloudShare:
        """Grow the share to `new_size_gb` GiB (Manila's extend action) and wait
        until it is available at that size."""
        with translate_errors(f"extending share {share.name!r} ({share.id})", "Manila"):
            try:
                # "extend" from 2.7 on ("os-extend" before); the SDK's own call sends no microversion.
                resp = self._sfs.post(f"/shares/{share.id}/action", json={"extend": {"new_size": new_size_gb}},
                                      microversion=EXTEND_MICROVERSION)
                sdk_exceptions.raise_from_response(resp)
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(f"Manila refused to extend share {share.name!r} from {share.size_gb} to "
                               f"{new_size_gb} GiB: {detail(exc)}") from exc
        LOG.info("extending Manila share %s from %d to %d GiB", share.id, share.size_gb, new_size_gb)
        return self._wait_share(share.id, "available", self._create_timeout)

    def _wait_share(self, share_id, wanted, timeout) -> CloudShare:
        def check():
            share = self.get(share_id)
            if share.status == wanted:
                return share
            if share.status in _FAILED_SHARE_STATUSES:
                raise CloudError(
                    f"share {share.name!r} ({share.id}) went to status {share.status!r} "
                    f"instead of {wanted!r}; see the manila-share logs"
                )
            return None

        return wait_until(check, timeout, f"share {share_id} to become {wanted}", self._clock,
                          check_first=False)

    def _delete_quietly(self, share_id):
        try:
            self._sfs.delete_share(share_id, ignore_missing=True)
        except Exception:  # best effort: the original error is the one to report
            LOG.exception("could not delete failed share %s", share_id)

    # -- access ---------------------------------------------------------

    def rules(self, share_id) -> list[AccessRule]:
        with translate_errors(f"listing access rules of share {share_id}", "Manila"):
            try:
                return [_to_rule(r) for r in self._sfs.access_rules(share_id)]
            except sdk_exceptions.BadRequestException:
                # Manila answers a rule listing for an unknown share with 400
                # "Share <id> not found.": tell that apart from a real refusal.
                self.get(share_id)  # raises NotFound when the share is gone
                raise

    def grant(self, share_id, access_type, access_to, access_level="rw") -> AccessRule:
        """Grant access and wait until the rule is active (an existing equal rule is reused)."""
        rule = self.request_access(share_id, access_type, access_to, access_level)
        return self.wait_access_active(share_id, rule)

    def request_access(self, share_id, access_type, access_to, access_level="rw") -> AccessRule:
        """Ask for access (or find the equal rule asked for before); do not wait for it."""
        existing = [r for r in self.rules(share_id)
                    if (r.access_type, r.access_to) == (access_type, access_to)]
        if existing:
            return existing[0]
        with translate_errors(f"granting {access_type} access to {access_to} on share {share_id}",
                              "Manila"):
            try:
                created = self._sfs.create_access_rule(
                    share_id, access_type=access_type, access_to=access_to, access_level=access_level
                )
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(
                    f"Manila refused {access_type} access for {access_to!r} on share {share_id}: "
                    f"{detail(exc)}"
                ) from exc
        return _to_rule(created)

    def wait_access_active(self, share_id, rule: AccessRule) -> AccessRule:
        def active():
            current = next((r for r in self.rules(share_id) if r.id == rule.id), None)
            if current is None:
                raise CloudError(f"access rule {rule.id} of share {share_id} vanished while applied")
            if current.state in _FAILED_RULE_STATES:
                raise CloudError(
                    f"Manila could not apply {rule.access_type} access for {rule.access_to!r} on "
                    f"share {share_id} (rule state {current.state!r}); see the manila-share logs"
                )
            return current if current.state == "active" else None

        return wait_until(active, self._access_timeout,
                          f"access rule {rule.id} of share {share_id} to become active", self._clock)

    def revoke(self, share_id, rule_id) -> None:
        with translate_errors(f"revoking access rule {rule_id} of share {share_id}", "Manila"):
            self._sfs.delete_access_rule(rule_id, share_id, ignore_missing=True)

        def gone():
            return all(r.id != rule_id for r in self.rules(share_id))

        wait_until(gone, self._access_timeout, f"access rule {rule_id} to be revoked", self._clock)

    def export_locations(self, share_id) -> list[ExportLocation]:
        """Where the share is exported, preferred locations first."""
        with translate_errors(f"reading export locations of share {share_id}", "Manila"):
            found = [
                ExportLocation(path=e.path, preferred=bool(e.is_preferred))
                for e in self._sfs.export_locations(share_id)
                if not e.is_admin
            ]
        if not found:
            raise CloudError(f"share {share_id} has no export location; is manila-share running?")
        return sorted(found, key=lambda e: not e.preferred)
