"""os-brick, set up to run here: as root without sudo, locks under our state dir.

os-brick does its privileged work through oslo.privsep, which by default
starts a helper with `sudo`. fuxi-server already runs as root, so privileged
calls run in-process instead; as non-root the helper is started via sudo as usual.
"""

import logging
import os
import threading

from oslo_concurrency import lockutils

from storage_core.errors import AttachError

LOG = logging.getLogger(__name__)

_setup_lock = threading.Lock()
_configured = False


def configure(lock_dir) -> None:
    """Prepare os-brick once per process; later calls are no-ops."""
    global _configured
    with _setup_lock:
        if _configured:
            return
        os.makedirs(lock_dir, exist_ok=True)
        # os-brick takes external locks; without a lock_path it refuses to work.
        lockutils.set_defaults(lock_path=lock_dir)
        import os_brick.privileged

        if os.geteuid() == 0:
            os_brick.privileged.default.set_client_mode(False)
        _configured = True


def _root_helper():
    return None if os.geteuid() == 0 else "sudo"


class Brick:
    """The few os-brick calls storage_core makes, with errors translated."""

    def __init__(self, lock_dir, device_scan_attempts=3, resizer=None):
        # os-brick is loaded here, before the worker's request threads exist: loaded
        # later from a request thread (it brings oslo.privsep and eventlet), it kept
        # the worker from exiting on SIGTERM until gunicorn's graceful timeout ran out.
        configure(lock_dir)
        self._lock_dir = lock_dir
        self._device_scan_attempts = device_scan_attempts
        # Loop devices (the LOCAL protocol's, on devcloud and the test Cinder) are
        # refreshed here, where a connector's rescan would run.
        if resizer is None:
            from storage_core.attach.resize import DeviceResizer
            from storage_core.executor import Executor

            resizer = DeviceResizer(Executor())
        self._resizer = resizer
        self._connectors = {}
        self._lock = threading.Lock()

    def connector_properties(self, host_ip, host_name=None) -> dict:
        configure(self._lock_dir)
        from os_brick.initiator import connector

        try:
            return connector.get_connector_properties(
                _root_helper(), host_ip, False, False, host=host_name
            )
        except Exception as exc:  # os-brick raises many unrelated types
            raise AttachError(f"os-brick could not read this host's connector properties: {exc}") from exc

    def _connector(self, protocol):
        configure(self._lock_dir)
        from os_brick.initiator import connector

        key = protocol.upper()
        with self._lock:
            if key not in self._connectors:
                try:
                    self._connectors[key] = connector.InitiatorConnector.factory(
                        key, _root_helper(), device_scan_attempts=self._device_scan_attempts
                    )
                except ValueError as exc:
                    raise AttachError(
                        f"os-brick has no connector for protocol {protocol!r}: {exc}"
                    ) from exc
            return self._connectors[key]

    def connect(self, connection_info) -> dict:
        protocol, data = _split(connection_info)
        try:
            device_info = self._connector(protocol).connect_volume(data)
        except AttachError:
            raise
        except Exception as exc:
            raise AttachError(f"os-brick could not connect the {protocol} volume: {exc}") from exc
        if not device_info or not device_info.get("path"):
            raise AttachError(f"os-brick connected the {protocol} volume but reported no device path")
        return device_info

    def extend(self, connection_info, device_path, wanted_bytes) -> int:
        """Make the connected device show the volume's new size (the cloud grew
        it); its size in bytes. os-brick's connector rescans (iSCSI, FC, NVMe-oF
        ...); its LOCAL connector only reads the size back, so a LOCAL loop
        device is first refreshed with `losetup -c`."""
        protocol, data = _split(connection_info)
        if protocol.upper() == "LOCAL":
            self._resizer.refresh_if_loop(device_path)
        try:
            self._connector(protocol).extend_volume(data)
        except AttachError:
            raise
        except Exception as exc:
            raise AttachError(f"os-brick could not rescan the extended {protocol} volume: {exc}") from exc
        return self._resizer.wait_for_size(device_path, wanted_bytes)

    def disconnect(self, connection_info, device_info) -> None:
        protocol, data = _split(connection_info)
        try:
            self._connector(protocol).disconnect_volume(data, device_info)
        except AttachError:
            raise
        except Exception as exc:
            raise AttachError(f"os-brick could not disconnect the {protocol} volume: {exc}") from exc


def _split(connection_info):
    """(protocol, os-brick connection properties) from what Cinder returned.

    The attachments API returns the properties flat, next to
    driver_volume_type; the legacy initialize_connection nests them under "data".
    """
    info = connection_info or {}
    protocol = info.get("driver_volume_type")
    if not protocol:
        raise AttachError(f"the cloud returned connection info without driver_volume_type: {info!r}")
    data = info.get("data")
    if isinstance(data, dict):
        return protocol, data
    return protocol, {k: v for k, v in info.items() if k != "driver_volume_type"}
