"""Kinds of volume: where a volume lives and how it reaches this host.

VolumeService keeps what every kind shares (names, per-volume locks, mount
counts, durable host state, idempotency, "never touch what is not ours");
a kind object knows one backend. Each kind has:

* ``name`` ("cinder", "manila") and ``noun`` ("volume", "share") for messages;
* ``unavailable_reason()``: None when the cloud offers the backend, else why not;
* ``parse_options(name, options)``: a spec, or InvalidInput listing what is allowed;
* ``find(name)``, ``get(id)``, ``list_owned()``: cloud records (``.id``, ``.name``,
  ``.owned``, ``.created_at``, ``.status``, ``.size_gb``, ``.metadata``);
* ``create(spec, mountpoint, journal)`` (a claimed pre-attached pool volume comes
  mounted and journaled); ``same_or_conflict(existing, spec)`` for a create of a name
  that exists;
* ``check_mountable(record)``: Conflict when it may not be mounted here now;
* ``put_on_host(record, name, mountpoint, journal)``: make it usable at
  ``mountpoint``, calling ``journal(HostVolume)`` before each step that leaves
  something to undo; on failure it raises and the service undoes what the
  journal holds with
* ``take_off_host(host_volume)``: idempotent, whatever phase was reached;
* ``prepare_delete(record, doing)``: Conflict naming who else still uses it;
  ``delete(record)`` (an adopted record is given back, not deleted);
  ``give_back(record)``: forget it without deleting it (fuxi's tags go, an
  adopted one gets its old name back);
* ``status(record)``: what Get reports about it;
* ``extend(record, size_gb, host_volume)``: grow it in the cloud and, when
  ``host_volume`` (this host's mount of it) is given, make the mounted file
  system show the new size; the new record.
"""

from storage_core.errors import Conflict, InvalidInput


def check_new_size(noun, record, size_gb, limits) -> None:
    """An extend must grow the volume, within the configured maximum."""
    if isinstance(size_gb, bool) or not isinstance(size_gb, int):
        raise InvalidInput(f"the new size must be a whole number of GiB, not {size_gb!r}")
    if size_gb <= record.size_gb:
        raise InvalidInput(
            f"{noun} {record.name!r} is {record.size_gb} GiB; the new size ({size_gb} GiB) must be larger "
            "(volumes only grow)"
        )
    if size_gb > limits.max_size_gb:
        raise InvalidInput(
            f"{size_gb} GiB is more than max_size_gb ({limits.max_size_gb} GiB) of this fuxi; "
            f"{noun} {record.name!r} is {record.size_gb} GiB"
        )


def refuse_differences(noun, name, differences) -> None:
    """A create of an existing name must ask for what exists; say what differs."""
    if differences:
        raise Conflict(
            f"{noun} {name!r} already exists with {', '.join(differences)}; "
            "remove it first or create it with the same options"
        )


def refuse_other_adoption(noun, name, existing_id, adopt_id) -> None:
    """A Create adopting `adopt_id` as `name`, when `name` is `existing_id` already:
    a retry (same one) is fine, another one is a Conflict."""
    if existing_id != adopt_id:
        raise Conflict(
            f"{noun} {name!r} already exists ({existing_id}); it is not {noun} {adopt_id}, so that "
            f"{noun} cannot be adopted under this name"
        )
