"""Loop devices as devcloud's "storage network".

A devcloud volume is a sparse file; exporting it to the host means binding it
to a loop device, which os-brick's LOCAL connector then uses as is. The kernel
is the source of truth for bindings (``losetup -j``): the store only remembers
which device we handed out, and start-up reconciles the two.
"""

import logging
import threading

from storage_core.errors import CommandError
from storage_core.executor import Executor

LOG = logging.getLogger(__name__)


class LoopDevices:
    def __init__(self, executor=None):
        self._executor = executor or Executor()
        # losetup -f picks "the first free device": two concurrent binds could
        # pick the same one. losetup retries internally on recent util-linux,
        # but serialising our own calls costs nothing and removes the doubt.
        self._lock = threading.Lock()

    def devices_for(self, path) -> list[str]:
        """Loop devices currently backed by ``path`` (may be several)."""
        result = self._executor.run(["losetup", "-j", path])
        devices = []
        for line in result.stdout.splitlines():
            # "/dev/loop3: [2049]:1234 (/state/volumes/x.img)"
            device, sep, _rest = line.partition(":")
            if sep and device.startswith("/dev/"):
                devices.append(device.strip())
        return devices

    def bind(self, path, read_only=False) -> str:
        """A loop device backed by ``path``: the existing one, else a new one."""
        with self._lock:
            existing = self.devices_for(path)
            if existing:
                return existing[0]
            argv = ["losetup", "-f", "--show"]
            if read_only:
                argv.append("-r")
            argv.append(path)
            device = self._executor.run(argv).stdout.strip()
            if not device.startswith("/dev/"):
                raise CommandError(argv, 0, device, "losetup printed no device")
            LOG.info("bound %s to %s", path, device)
            return device

    def is_bound(self, path, device) -> bool:
        return device in self.devices_for(path)

    def release(self, path) -> list[str]:
        """Detach every loop device backed by ``path``; returns those detached."""
        with self._lock:
            released = []
            for device in self.devices_for(path):
                try:
                    self._executor.run(["losetup", "-d", device])
                except CommandError as exc:
                    # Someone else detached it between -j and -d: that is the
                    # state we want anyway.
                    if device in self.devices_for(path):
                        raise
                    LOG.debug("%s went away while releasing: %s", device, exc)
                    continue
                LOG.info("released %s from %s", device, path)
                released.append(device)
            return released
