"""Finding a Nova-attached volume's disk by serial, in a tmp /dev/disk and /sys."""

import os
import threading
from itertools import pairwise

import pytest

from storage_core.attach.devices import UDEV_TRIGGER, DeviceFinder, by_id_names
from storage_core.errors import AttachError
from storage_core.executor import CommandResult
from storage_core.fakes import FakeClock, RecordingExecutor

VOL_A = "7d0b2f4e-91c3-4a5e-8f11-0c9e2b7a6d11"
VOL_B = "e3a1c9d2-5b7f-4c08-9e6a-2f4d8b1c3a77"


class Host:
    """A tmp guest: dev/ holds "disks" (plain files), disk/ the udev links, sys/ sysfs."""

    def __init__(self, root):
        self.dev = root / "dev"
        self.disk_root = root / "disk"
        self.sys = root / "sys"
        for d in (self.dev, self.disk_root / "by-id", self.disk_root / "by-path", self.sys):
            d.mkdir(parents=True)

    def disk(self, name, size=1024):
        path = self.dev / name
        path.write_bytes(b"\0" * size)
        return str(path)

    def link(self, kind, name, target):
        path = self.disk_root / kind / name
        os.symlink(os.path.relpath(target, path.parent), str(path))  # udev makes relative links
        return str(path)

    def scsi_hosts(self, count):
        scans = []
        for i in range(count):
            d = self.sys / "class" / "scsi_host" / f"host{i}"
            d.mkdir(parents=True)
            (d / "scan").write_text("")
            scans.append(d / "scan")
        return scans

    def finder(self, executor=None, clock=None, timeout=10.0, meta_data=None):
        return DeviceFinder(
            executor or RecordingExecutor(),
            disk_root=str(self.disk_root),
            sysfs_root=str(self.sys),
            timeout=timeout,
            clock=clock or FakeClock(),
            meta_data=meta_data,
        )


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        f"virtio-{VOL_A[:20]}",
        f"virtio-{VOL_A}",
        f"scsi-0QEMU_QEMU_HARDDISK_{VOL_A[:20]}",
        f"scsi-0QEMU_QEMU_HARDDISK_{VOL_A}",
        f"wwn-0x6001405{VOL_A.replace('-', '')}",
    ],
)
def test_each_by_id_pattern_is_found(host, name):
    device = host.disk("vdc")
    host.link("by-id", name, device)
    clock = FakeClock()
    assert host.finder(clock=clock).find(VOL_A) == device
    assert clock.sleeps == []  # found at the first look


def test_candidate_names_put_the_virtio_serial_first():
    assert by_id_names(VOL_A) == [
        f"virtio-{VOL_A[:20]}",
        f"virtio-{VOL_A}",
        f"scsi-0QEMU_QEMU_HARDDISK_{VOL_A[:20]}",
        f"scsi-0QEMU_QEMU_HARDDISK_{VOL_A}",
    ]


def test_partitions_and_stale_links_do_not_count(host):
    device = host.disk("vdc")
    host.link("by-id", f"virtio-{VOL_A[:20]}-part1", device)
    host.link("by-id", f"wwn-0x{VOL_A.replace('-', '')}-part1", device)
    host.link("by-id", f"virtio-{VOL_A}", str(host.dev / "vdz"))  # disk already gone
    with pytest.raises(AttachError):
        host.finder(timeout=2.0).find(VOL_A)


def test_nova_device_name_is_ignored(host):
    # Nova said /dev/vdb; the guest called our disk vdc, and vdb is another volume.
    other = host.disk("vdb")
    ours = host.disk("vdc")
    host.link("by-id", f"virtio-{VOL_B[:20]}", other)
    host.link("by-id", f"virtio-{VOL_A[:20]}", ours)
    assert host.finder().find(VOL_A, reported_device=other) == ours


def test_two_volumes_of_the_same_size_each_get_their_own_disk(host):
    first, second = host.disk("vdb", 4096), host.disk("vdc", 4096)
    host.link("by-id", f"virtio-{VOL_B[:20]}", first)
    host.link("by-id", f"virtio-{VOL_A[:20]}", second)
    finder = host.finder()
    assert finder.find(VOL_A) == second
    assert finder.find(VOL_B) == first


def test_a_link_that_appears_late_is_found_real_time(host):
    device = host.disk("vdc")
    timer = threading.Timer(0.3, host.link, ("by-id", f"virtio-{VOL_A[:20]}", device))
    timer.start()
    try:
        finder = DeviceFinder(RecordingExecutor(), str(host.disk_root), str(host.sys), timeout=5.0)
        assert finder.find(VOL_A) == device
    finally:
        timer.cancel()


def test_a_link_that_appears_late_is_found_fake_time(host):
    device = host.disk("vdc")
    clock = FakeClock()
    clock.at(7.5, lambda: host.link("by-id", f"scsi-0QEMU_QEMU_HARDDISK_{VOL_A}", device))
    assert host.finder(clock=clock, timeout=60.0).find(VOL_A) == device
    assert 7.5 <= clock.now < 9.0  # seen within one slow poll


def test_never_appearing_is_an_attach_error_naming_volume_paths_and_time(host):
    clock = FakeClock()
    with pytest.raises(AttachError) as caught:
        host.finder(clock=clock, timeout=12.0).find(VOL_A)
    message = str(caught.value)
    assert VOL_A in message and "12.0 s" in message
    assert os.path.join(str(host.disk_root), "by-id", f"virtio-{VOL_A[:20]}") in message
    assert f"scsi-0QEMU_QEMU_HARDDISK_{VOL_A}" in message and "wwn-0x*" in message
    assert clock.now == pytest.approx(12.0)


def test_rescans_between_misses_at_most_once_a_second(host):
    scans = host.scsi_hosts(2)
    clock = FakeClock()
    times = []

    class Udev(RecordingExecutor):
        def run(self, argv, ok_exit_codes=(0,), timeout=None):
            times.append(clock.now)
            return super().run(argv, ok_exit_codes, timeout)

    executor = Udev()
    with pytest.raises(AttachError):
        host.finder(executor, clock, timeout=10.0).find(VOL_A)
    # About a hundred polls in 10 s, but a rescan only once a second or less.
    assert len(clock.sleeps) > 50 and 5 <= len(times) <= 10
    assert times[0] >= 1.0 and all(b - a >= 1.0 for a, b in pairwise(times))
    assert all(call == list(UDEV_TRIGGER) for call in executor.calls)
    assert all(scan.read_text() == "- - -" for scan in scans)


def test_a_rescan_that_makes_the_link_appear(host):
    device = host.disk("vdc")

    class Udev(RecordingExecutor):
        def run(self, argv, ok_exit_codes=(0,), timeout=None):
            host.link("by-id", f"virtio-{VOL_A[:20]}", device)  # the replayed event makes the link
            return super().run(argv, ok_exit_codes, timeout)

    clock = FakeClock()
    executor = Udev()
    assert host.finder(executor, clock).find(VOL_A) == device
    assert len(executor.calls) == 1 and 1.0 <= clock.now < 1.1


def test_missing_udevadm_and_no_scsi_hosts_are_not_fatal(host):
    executor = RecordingExecutor({("udevadm",): CommandResult("", "udevadm: not found", 127)})
    device = host.disk("vdc")
    clock = FakeClock()
    clock.at(2.5, lambda: host.link("by-id", f"virtio-{VOL_A}", device))
    assert host.finder(executor, clock).find(VOL_A) == device
    assert executor.calls  # it was tried, failed, and the wait went on


def _meta(volume_id, address, bus):
    return {"uuid": "x", "devices": [{"type": "disk", "serial": volume_id, "address": address, "bus": bus}]}


def test_by_path_fallback_for_virtio(host):
    device = host.disk("vdd")
    host.link("by-path", "virtio-pci-0000:00:07.0", device)
    asked = []

    def meta():
        asked.append(1)
        return _meta(VOL_A, "0000:00:07.0", "virtio")

    clock = FakeClock()
    assert host.finder(clock=clock, meta_data=meta).find(VOL_A) == device
    assert len(asked) == 1 and clock.now >= 1.0  # asked only at rescan time, not at every poll


def test_by_path_fallback_for_scsi(host):
    device = host.disk("sdb")
    host.link("by-path", "pci-0000:00:05.0-scsi-0:0:0:1", device)
    host.link("by-path", "pci-0000:00:05.0-scsi-0:0:0:1-part1", device)
    meta = lambda: _meta(VOL_A, "0000:00:05.0", "scsi")  # noqa: E731
    assert host.finder(meta_data=meta).find(VOL_A) == device


def test_by_path_fallback_does_not_guess(host):
    # Two disks behind one SCSI controller: no way to tell which is ours.
    host.link("by-path", "pci-0000:00:05.0-scsi-0:0:0:1", host.disk("sdb"))
    host.link("by-path", "pci-0000:00:05.0-scsi-0:0:0:2", host.disk("sdc"))
    meta = lambda: _meta(VOL_A, "0000:00:05.0", "scsi")  # noqa: E731
    with pytest.raises(AttachError, match="pci-0000:00:05.0-"):
        host.finder(meta_data=meta, timeout=3.0).find(VOL_A)
    # A disk at the address whose serial names another volume is not ours either.
    device = host.disk("vde")
    host.link("by-path", "virtio-pci-0000:00:08.0", device)
    serial = host.sys / "class" / "block" / "vde" / "serial"
    serial.parent.mkdir(parents=True)
    serial.write_text(VOL_B[:20])
    meta = lambda: _meta(VOL_A, "0000:00:08.0", "virtio")  # noqa: E731
    with pytest.raises(AttachError):
        host.finder(meta_data=meta, timeout=3.0).find(VOL_A)
    serial.write_text(VOL_A[:20])
    assert host.finder(meta_data=meta, timeout=3.0).find(VOL_A) == device


def test_by_path_fallback_ignores_other_volumes_and_broken_metadata(host):
    host.link("by-path", "virtio-pci-0000:00:07.0", host.disk("vdd"))

    def broken():
        raise OSError("metadata service went away")

    for meta in (lambda: _meta(VOL_B, "0000:00:07.0", "virtio"), lambda: None, broken,
                 lambda: _meta(VOL_A, "1:0:2:0", "scsi")):
        with pytest.raises(AttachError):
            host.finder(meta_data=meta, timeout=3.0).find(VOL_A)
