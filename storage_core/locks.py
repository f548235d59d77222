"""The lock of one volume name, held across the processes sharing a state dir."""

from oslo_concurrency import lockutils


def volume_lock(lock_dir, name):
    """A context manager holding volume `name`'s lock (not re-entrant)."""
    return lockutils.lock(f"volume-{name}", external=True, lock_path=lock_dir)
