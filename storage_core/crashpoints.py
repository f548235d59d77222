"""Named crash points, for tests that kill the server half-way through a step.

Off unless the environment names one: with STORAGE_CORE_CRASH_AT=mount.formatted
the whole process group (the server, its workers, any helper it started) gets
SIGKILL the moment a mount has formatted its device, exactly as a power cut or
an OOM kill would stop it. A test then restarts the server and checks that the
start-up reconciliation mended everything (storage_core.reconcile).

Each point sits after the step its name says is done and before the next one
is journaled, which is where a crash leaves the cloud, the host and the local
state disagreeing.
"""

import logging
import os
import signal

LOG = logging.getLogger(__name__)

ENV = "STORAGE_CORE_CRASH_AT"

#: Every crash point, in the order a volume's life reaches them.
POINTS = (
    # create
    "create.sent",  # the cloud made the volume; nothing recorded here yet
    # mount, Cinder (bare metal or Nova)
    "attach.intent_written",  # the journal says an attach is coming; the cloud has none yet
    "attach.cloud_attached",  # the cloud attachment exists; not journaled yet
    "attach.journaled",  # journaled; the host is not connected yet
    "attach.connected",  # os-brick connected the device; the attachment is not completed
    "mount.attached",  # the attach is journaled as done; no file system checked yet
    "mount.formatted",  # mkfs done; not mounted
    "mount.mounted",  # mounted; the journal still says attached
    "mount.state_written",  # journaled as mounted; the caller's mount is not counted yet
    "mount.counted",  # counted; the answer has not gone back yet
    # mount, Manila
    "share.access_requested",  # the access rule exists; not journaled yet
    # unmount
    "unmount.uncounted",  # the last mount is uncounted; the volume is still on the host
    "unmount.unmounted",  # the file system is unmounted; still attached
    "detach.disconnected",  # the host let the device go; the cloud attachment remains
    "detach.deleted",  # the cloud attachment is gone; the journal still has it
    # remove
    "remove.deleted",  # the cloud deleted the volume; the catalog still lists it
    # adopt (-o volume_id)
    "adopt.reserved",  # the volume is reserved for the adoption; not renamed or tagged yet
    # snapshot, backup or clone of a volume mounted here
    "copy.frozen",  # its file system is frozen (every write waits); the copy is not asked for yet
)


def _armed() -> frozenset:
    names = frozenset(n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip())
    unknown = sorted(names - set(POINTS))
    if unknown:
        raise ValueError(f"{ENV} names unknown crash points {', '.join(unknown)}; known: {', '.join(POINTS)}")
    return names


_ARMED = _armed()


def crash_point(name: str) -> None:
    """SIGKILL this process group here if the environment armed `name`."""
    if name not in _ARMED:
        return
    LOG.critical("crash point %s reached: killing process group %d", name, os.getpgrp())
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.killpg(os.getpgrp(), signal.SIGKILL)
