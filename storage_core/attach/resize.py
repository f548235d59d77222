"""A volume grown in the cloud, seen at its new size on this host.

After Cinder extends a volume, the host's block device must learn the new
size before the file system can grow into it. Who tells it depends on the
transport: os-brick's connectors rescan theirs (iSCSI, FC, NVMe-oF:
``extend_volume``); a hypervisor resizes a guest's virtio disk and the guest
kernel sees the capacity change by itself. A loop device never looks at its
backing file again on its own - and loop devices are what devcloud and fuxi's
real-Cinder test driver export (os-brick's LOCAL connector only reads the
size back) and what devcloud's emulated hypervisor gives its "guest" - so for
one, ``losetup -c`` (set capacity) does what the rescan would.
"""

import logging
import os

from storage_core.errors import AttachError, CommandError, Timeout
from storage_core.fs import device_size
from storage_core.waits import Clock, wait_until

LOG = logging.getLogger(__name__)

# A rescan is seen at once by a loop device or a connector's rescan; a
# hypervisor's capacity event reaches the guest within moments.
RESIZE_TIMEOUT = 20.0


def is_loop_device(device) -> bool:
    return os.path.basename(os.path.realpath(device)).startswith("loop")


class DeviceResizer:
    def __init__(self, executor, clock=None, timeout=RESIZE_TIMEOUT):
        self._executor = executor
        self._clock = clock or Clock()
        self._timeout = timeout

    def refresh_if_loop(self, device) -> bool:
        """`losetup -c` for a loop device (True); anything else is left alone (False)."""
        if not is_loop_device(device):
            return False
        try:
            self._executor.run(["losetup", "-c", device])
        except CommandError as exc:
            raise AttachError(f"could not refresh the size of loop device {device}: {exc}") from exc
        return True

    def wait_for_size(self, device, wanted_bytes) -> int:
        """Wait until `device` is at least `wanted_bytes` long; its size in bytes."""
        def grown():
            size = device_size(device)
            return size if size >= wanted_bytes else None

        try:
            return wait_until(grown, self._timeout, f"{device} to show {wanted_bytes} bytes", self._clock)
        except Timeout:
            raise AttachError(
                f"the cloud grew the volume, but {device} still shows {device_size(device)} bytes "
                f"(wanted {wanted_bytes}) after {self._timeout:g} s; the host did not see the new size"
            ) from None
