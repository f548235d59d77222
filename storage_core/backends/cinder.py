"""Cinder volumes and attachments through openstacksdk (block storage v3)."""

import json
import logging
from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as sdk_exceptions
from openstack import utils as sdk_utils

from storage_core.backends.cinder_paging import every_page
from storage_core.backends.cloud_time import parse_cloud_time
from storage_core.backends.sdk_errors import detail as _detail
from storage_core.backends.sdk_errors import translate_errors as _translate_errors
from storage_core.errors import AttachRefused, AttachUnanswered, CloudError, Conflict, NotFound, Timeout
from storage_core.models import (
    FSTYPE_KEY,
    MULTIATTACH_KEY,
    OWNER_KEY,
    OWNER_VALUE,
    POOL_KEY,
    PREEMPT_KEY,
    SOURCE_KEY,
    CloudAttachment,
    CloudVolume,
    VolumeSpec,
)
from storage_core.waits import wait_until

LOG = logging.getLogger(__name__)

# Microversions of the attachments API ("new attach flow").
ATTACHMENT_CREATE_MICROVERSION = "3.27"
ATTACHMENT_COMPLETE_MICROVERSION = "3.44"
# os-extend of an in-use volume (an online extend); below it only available ones grow.
EXTEND_IN_USE_MICROVERSION = "3.42"

# How long a create that got no answer is looked for by name before its error stands.
LOST_CREATE_GRACE = 5.0

# The create attribute naming each kind of source (a backup's needs microversion 3.47,
# which openstacksdk negotiates for it).
_SOURCE_ATTRIBUTE = {"snapshot": "snapshot_id", "volume": "source_volid", "backup": "backup_id"}
_FAILED_STATUSES = ("error", "error_deleting", "error_extending")
#: Admin metadata Cinder shows among a volume's metadata (api_utils.add_visible_admin_metadata).
CINDER_ADMIN_METADATA_KEYS = ("readonly", "attached_mode")


def _attachments(entries) -> tuple[CloudAttachment, ...]:
    return tuple(
        CloudAttachment(
            attachment_id=a.get("attachment_id") or a.get("id"),
            host_name=a.get("host_name"),
            server_id=a.get("server_id"),
            device=a.get("device"),
        )
        for a in (entries or [])
    )


def _to_cloud_volume(vol) -> CloudVolume:
    return CloudVolume(
        id=vol.id,
        name=vol.name,
        size_gb=int(vol.size or 0),
        status=vol.status,
        created_at=parse_cloud_time(vol.created_at),
        metadata=dict(vol.metadata or {}),
        volume_type=vol.volume_type,
        availability_zone=vol.availability_zone,
        attachments=_attachments(vol.attachments),
        multiattach=bool(vol.is_multiattach),
    )


def _volume_from_body(body: dict) -> CloudVolume:
    """The same record from Cinder's own JSON (one volume of /volumes/detail)."""
    return CloudVolume(
        id=body["id"],
        name=body.get("name"),
        size_gb=int(body.get("size") or 0),
        status=body.get("status"),
        created_at=parse_cloud_time(body.get("created_at")),
        metadata=dict(body.get("metadata") or {}),
        volume_type=body.get("volume_type"),
        availability_zone=body.get("availability_zone"),
        attachments=_attachments(body.get("attachments")),
        multiattach=bool(body.get("multiattach")),
    )


class CinderBackend:
    # Volumes asked for per page of a listing: Cinder's osapi_max_limit default.
    list_page_size = 1000

    def __init__(self, connection, clock=None, create_timeout=110.0, delete_timeout=55.0, reservations=None):
        """`reservations` (storage_core.reservations.ReservationJournal): where the
        reservations this host holds are journaled; None: not journaled."""
        self._conn = connection
        self._reservations = reservations
        self._clock = clock
        self._create_timeout = create_timeout
        self._delete_timeout = delete_timeout

    @property
    def _bs(self):
        return self._conn.block_storage

    # -- volumes --------------------------------------------------------

    def named(self, name) -> list[CloudVolume]:
        """Every volume of the project called `name` (Cinder's name filter, checked again)."""
        with _translate_errors(f"looking up volume {name!r}"):
            return [_to_cloud_volume(v) for v in self._bs.volumes(details=True, name=name) if v.name == name]

    def find(self, name) -> CloudVolume | None:
        """The one volume called `name`, or None. Two of them is an error."""
        with _translate_errors(f"looking up volume {name!r}"):
            found = [v for v in self._bs.volumes(details=True, name=name) if v.name == name]
        if not found:
            return None
        if len(found) > 1:
            ids = ", ".join(v.id for v in found)
            raise Conflict(
                f"Cinder holds {len(found)} volumes named {name!r} ({ids}); fuxi cannot tell "
                "which is meant. Rename or delete the extra ones in Cinder."
            )
        return _to_cloud_volume(found[0])

    def get(self, volume_id) -> CloudVolume:
        with _translate_errors(f"reading volume {volume_id}"):
            return _to_cloud_volume(self._bs.get_volume(volume_id))

    def list_owned(self) -> list[CloudVolume]:
        """fuxi's volumes: tagged as ours, and no pool volume (claimed or not yet)."""
        with _translate_errors("listing fuxi volumes"):
            return [
                v for v in self._list_all({OWNER_KEY: OWNER_VALUE})
                if v.metadata.get(OWNER_KEY) == OWNER_VALUE and POOL_KEY not in v.metadata
            ]

    def list_tagged(self, key, value=None) -> list[CloudVolume]:
        """The project's volumes whose metadata holds `key` (with `value`, if given)."""
        with _translate_errors(f"listing volumes tagged {key!r}"):
            return [
                v for v in self._list_all({key: value} if value is not None else None)
                if key in v.metadata and (value is None or v.metadata[key] == value)
            ]

    def _list_all(self, metadata=None) -> list[CloudVolume]:
        """Every volume of the project (that carries `metadata`, as far as Cinder filters).

        Through the proxy's plain GETs, not openstacksdk's Resource objects:
        those cost about a millisecond each on the client, five seconds for
        5,000 volumes. The SDK's own metadata filter is no help either: it
        encodes a dict as just its keys, which Cinder cannot read. Cinder
        takes ``metadata={"k": "v"}`` as JSON; callers still check the tags
        themselves, as a cloud whose filter config drops it answers everything.
        """
        params = {"limit": self.list_page_size}
        if metadata:
            params["metadata"] = json.dumps(metadata, sort_keys=True)
        return [_volume_from_body(v) for v in every_page(self._bs, "/volumes/detail", "volumes", params)]

    def create(self, spec: VolumeSpec) -> CloudVolume:
        metadata = {OWNER_KEY: OWNER_VALUE, **spec.extra_metadata}
        if spec.fstype:  # a copy of a source whose file system is not known yet has none
            metadata[FSTYPE_KEY] = spec.fstype
        if spec.multiattach:
            metadata[MULTIATTACH_KEY] = spec.multiattach
        if spec.preempt:
            metadata[PREEMPT_KEY] = "true"
        attrs = {"name": spec.name, "size": spec.size_gb, "metadata": metadata}
        if spec.source is not None:
            # Resolved (storage_core.sources): the source's id. Cinder copies its data.
            attrs[_SOURCE_ATTRIBUTE[spec.source.kind]] = spec.source.ref
            metadata[SOURCE_KEY] = spec.source.record()
        if spec.volume_type:
            attrs["volume_type"] = spec.volume_type
        if spec.availability_zone:
            attrs["availability_zone"] = spec.availability_zone
        try:
            with _translate_errors(f"creating volume {spec.name!r}"):
                created = self._bs.create_volume(**attrs)
        except CloudError as exc:
            if not isinstance(exc.__cause__, ks_exceptions.ConnectionError):
                raise
            created = self._landed_without_answer(spec.name, exc)
        LOG.info("created Cinder volume %s for %s", created.id, spec.name)
        try:
            # The create's answer already said "creating": look again only after a poll interval.
            made = self.wait_for_status(created.id, "available", self._create_timeout, check_first=False)
            return self.keep_only_metadata(made, metadata)
        except (CloudError, Timeout):
            # Leave nothing half-made behind: a volume that never became usable goes.
            self._delete_quietly(created.id)
            raise

    def keep_only_metadata(self, vol: CloudVolume, metadata) -> CloudVolume:
        """`vol` with exactly `metadata`. A restore from a backup (also a create
        from one) puts the backed-up volume's metadata, and src_backup_id, in
        place of the volume's own:
        fuxi's tags of another volume (an adoption, a lease, preemption) must
        not become this one's."""
        shown = {k: v for k, v in vol.metadata.items() if k not in CINDER_ADMIN_METADATA_KEYS}
        if shown == dict(metadata):
            return vol
        LOG.info("volume %s: dropping the metadata Cinder copied into it (%s)", vol.id,
                 ", ".join(sorted(set(shown) - set(metadata))) or "changed values")
        return self.rename_and_replace_metadata(vol.id, vol.name, metadata)

    def _landed_without_answer(self, name, error) -> CloudVolume:
        """A create that got no answer (a timeout, a dropped connection) may still
        be carried out by the cloud. Look the name up for a while and adopt what
        it made: a user's retry would otherwise make a second volume of the name.
        Nothing by then (or no answer to the lookups either): the create's error."""
        def landed():
            try:
                return next((v for v in self.named(name) if v.owned), None)
            except CloudError:
                raise error from None
        try:
            found = wait_until(landed, LOST_CREATE_GRACE, f"volume {name!r} to appear", self._clock)
        except Timeout:
            raise error from None
        LOG.warning("creating volume %r got no answer, but the cloud made it (%s): adopting it", name, found.id)
        return found

    def delete(self, volume: CloudVolume) -> None:
        with _translate_errors(f"deleting volume {volume.name!r} ({volume.id})"):
            try:
                self._bs.delete_volume(volume.id, ignore_missing=True)
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(
                    f"Cinder refused to delete volume {volume.name!r} ({volume.id}): {_detail(exc)}"
                ) from exc
        self.wait_gone(volume.id, self._delete_timeout)

    def extend(self, volume: CloudVolume, new_size_gb, timeout=None) -> CloudVolume:
        """Grow `volume` to `new_size_gb` GiB (Cinder's os-extend) and wait until
        Cinder is done: ``extending``, then back to ``available`` or ``in-use``
        at the new size. An in-use volume needs microversion 3.42 (online
        extend); a cloud without it is refused here, before anything changes."""
        in_use = volume.status == "in-use"
        microversion = None
        if in_use:
            with _translate_errors("reading Cinder's API version"):
                if not sdk_utils.supports_microversion(self._bs, EXTEND_IN_USE_MICROVERSION):
                    raise Conflict(
                        f"volume {volume.name!r} is in use, and this Cinder cannot extend a volume in use "
                        f"(microversion {EXTEND_IN_USE_MICROVERSION} needed); unmount it everywhere first"
                    )
            microversion = EXTEND_IN_USE_MICROVERSION
        with _translate_errors(f"extending volume {volume.name!r} ({volume.id})"):
            resp = self._bs.post(f"/volumes/{volume.id}/action", json={"os-extend": {"new_size": new_size_gb}},
                                 microversion=microversion)
            try:
                sdk_exceptions.raise_from_response(resp)
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(
                    f"Cinder refused to extend volume {volume.name!r} ({volume.id}) from {volume.size_gb} "
                    f"to {new_size_gb} GiB: {_detail(exc)}"
                ) from exc
        LOG.info("extending Cinder volume %s from %d to %d GiB", volume.id, volume.size_gb, new_size_gb)

        def done():
            vol = self.get(volume.id)
            if vol.status in _FAILED_STATUSES:
                raise CloudError(
                    f"volume {vol.name!r} ({vol.id}) went to status {vol.status!r} while extending to "
                    f"{new_size_gb} GiB; see the cinder-volume logs (an admin resets it with os-reset_status)"
                )
            return vol if vol.status in ("available", "in-use") and vol.size_gb >= new_size_gb else None

        return wait_until(done, timeout or self._create_timeout, f"volume {volume.id} to grow to {new_size_gb} GiB",
                          self._clock, check_first=False)

    def wait_for_status(self, volume_id, wanted, timeout, check_first=True) -> CloudVolume:
        def check():
            vol = self.get(volume_id)
            if vol.status == wanted:
                return vol
            if vol.status in _FAILED_STATUSES:
                raise CloudError(
                    f"volume {vol.name!r} ({vol.id}) went to status {vol.status!r} "
                    f"instead of {wanted!r}; see the Cinder logs"
                )
            return None

        return wait_until(
            check, timeout, f"volume {volume_id} to become {wanted}", self._clock, check_first=check_first
        )

    def wait_gone(self, volume_id, timeout) -> None:
        def check():
            try:
                vol = self.get(volume_id)
            except NotFound:
                return True
            if vol.status in _FAILED_STATUSES:
                raise CloudError(f"deleting volume {volume_id} failed: status {vol.status!r}")
            return False

        wait_until(check, timeout, f"volume {volume_id} to be deleted", self._clock)

    def rename_and_replace_metadata(self, volume_id, name, metadata: dict) -> CloudVolume:
        """Rename the volume and replace its whole metadata with `metadata`, in one
        request (PUT /volumes/{id} with ``name`` and ``metadata``): keys left out go.

        Allowed in any status but maintenance, ``reserved`` and ``in-use``
        included. One request, so no crash of ours can leave half of it done;
        inside Cinder it is two writes, the metadata first, then the name (a
        failure between them is Cinder's own, rare, and answered with an error).
        Returns the volume as Cinder's answer shows it: the new name and
        metadata, the status it had. Cinder shows its admin metadata keys
        ``readonly`` and ``attached_mode`` among the metadata of a volume that
        has them; they are not sent back, or they would become user metadata.
        """
        metadata = {k: v for k, v in metadata.items() if k not in CINDER_ADMIN_METADATA_KEYS}
        with _translate_errors(f"renaming volume {volume_id} to {name!r} and replacing its metadata"):
            try:
                updated = self._bs.update_volume(volume_id, name=name, metadata=metadata)
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(
                    f"Cinder refused to rename volume {volume_id} to {name!r} and replace its "
                    f"metadata: {_detail(exc)}"
                ) from exc
        return _to_cloud_volume(updated)

    def update_metadata(self, volume_id, set_items: dict, delete_keys) -> None:
        """Set `set_items` (other keys stay), then delete `delete_keys`.

        Set first: if a deletion fails, the volume carries both the old and
        the new tags rather than neither. A key already gone is no error.
        """
        with _translate_errors(f"updating the metadata of volume {volume_id}"):
            try:
                if set_items:
                    self._bs.set_volume_metadata(volume_id, **set_items)
                for key in delete_keys:
                    try:
                        self._bs.delete_volume_metadata(volume_id, keys=[key])
                    except sdk_exceptions.NotFoundException:
                        # Cinder's 404 is the same for a missing key and a
                        # missing volume: only the volume's is an error.
                        self._bs.get_volume(volume_id)
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(
                    f"Cinder refused to change the metadata of volume {volume_id}: {_detail(exc)}"
                ) from exc

    def _delete_quietly(self, volume_id):
        try:
            self._bs.delete_volume(volume_id, ignore_missing=True)
        except Exception:  # best effort: the original error is the one to report
            LOG.exception("could not delete failed volume %s", volume_id)

    # -- attachments ----------------------------------------------------

    def require_attachments_api(self) -> None:
        """Refuse clearly when the cloud is too old for bare-metal attach."""
        with _translate_errors("reading Cinder's API version"):
            if not sdk_utils.supports_microversion(self._bs, ATTACHMENT_COMPLETE_MICROVERSION):
                raise CloudError(
                    "bare-metal attach needs Cinder's attachments API at microversion "
                    f"{ATTACHMENT_COMPLETE_MICROVERSION} or newer (Queens+); this cloud offers less"
                )

    def reserve(self, volume_id) -> str:
        """Take an ``available`` volume for ourselves; return the attachment id.

        An attachment without a connector (microversion 3.27): Cinder moves
        the volume to ``reserved`` in one conditional update, so of several
        hosts reserving the same volume exactly one wins; the others get a
        400 (status must be available or downloading to reserve), raised
        here as Conflict. release() gives it back (``available`` again).
        """
        with _translate_errors(f"reserving volume {volume_id}"):
            try:
                att = self._bs.create_attachment(volume_id)
            except sdk_exceptions.BadRequestException as exc:
                raise Conflict(
                    f"volume {volume_id} is taken: Cinder refused to reserve it: {_detail(exc)}"
                ) from exc
        if self._reservations is not None:
            self._reservations.held(att.id, volume_id)
        return att.id

    def release(self, attachment_id) -> None:
        """Undo reserve(): the volume becomes ``available`` again. Gone already is fine."""
        with _translate_errors(f"releasing reservation {attachment_id}"):
            self._bs.delete_attachment(attachment_id, ignore_missing=True)
        if self._reservations is not None:
            self._reservations.released(attachment_id)

    def release_leftover_reservations(self) -> list[str]:
        """Release the reservations a crash left held (the journal's); the volumes freed."""
        return self._reservations.release_leftovers(self.release) if self._reservations is not None else []

    def create_attachment(self, volume_id, connector, instance_uuid=None, mode="rw"):
        """Create an attachment for this host; return (attachment id, connection_info)."""
        attrs = {"connector": connector, "mode": mode}
        if instance_uuid:
            # openstacksdk sends instance=None as a field Cinder rejects.
            attrs["instance"] = instance_uuid
        try:
            with _translate_errors(f"attaching volume {volume_id}"):
                try:
                    att = self._bs.create_attachment(volume_id, **attrs)
                except sdk_exceptions.BadRequestException as exc:
                    raise AttachRefused(f"Cinder refused to attach volume {volume_id}: {_detail(exc)}") from exc
        except CloudError as exc:
            if isinstance(exc.__cause__, ks_exceptions.ConnectionError):
                raise AttachUnanswered(str(exc)) from exc.__cause__
            raise
        if not att.connection_info:
            self.delete_attachment(att.id)
            raise CloudError(f"Cinder attached volume {volume_id} but returned no connection info")
        return att.id, dict(att.connection_info)

    def complete_attachment(self, attachment_id) -> None:
        with _translate_errors(f"completing attachment {attachment_id}"):
            self._bs.complete_attachment(attachment_id)

    def delete_attachment(self, attachment_id) -> None:
        with _translate_errors(f"deleting attachment {attachment_id}"):
            self._bs.delete_attachment(attachment_id, ignore_missing=True)

    def attachment_summaries(self, volume_id=None, instance_id=None) -> list[dict]:
        """Attachments of one volume and/or one instance, each {"id", "volume_id",
        "status", "instance"}: GET /attachments, microversion 3.27. Unlike a
        volume's "attachments", this shows ones not completed yet."""
        params = {"limit": self.list_page_size}
        wanted = {"volume_id": volume_id, "instance": instance_id}
        if volume_id:
            params["volume_id"] = volume_id
        if instance_id:
            params["instance_id"] = instance_id
        with _translate_errors(f"listing attachments of {volume_id or instance_id}"):
            page = every_page(self._bs, "/attachments", "attachments", params, ATTACHMENT_CREATE_MICROVERSION)
        # Filtered here too: a cloud that ignores a filter answers with everything.
        return [{k: a.get(k) for k in ("id", "volume_id", "status", "instance")} for a in page
                if all(v is None or a.get(k) == v for k, v in wanted.items())]

    def attachment_connection_info(self, attachment_id) -> dict:
        """What the cloud told the host to connect to for an attachment ({} when none)."""
        with _translate_errors(f"reading attachment {attachment_id}"):
            resp = self._bs.get(f"/attachments/{attachment_id}", microversion=ATTACHMENT_CREATE_MICROVERSION)
            if resp.status_code == 404:
                raise NotFound(f"attachment {attachment_id} does not exist")
            sdk_exceptions.raise_from_response(resp)
            return dict(resp.json()["attachment"].get("connection_info") or {})
