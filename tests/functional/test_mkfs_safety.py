"""mkfs never touches a device that carries anything: real loop devices, the real
blkid, mkfs and mount of this host, and storage_core's Filesystems.

A partition table without a file system, or a file system other than the one
asked for, is never formatted, and every byte on the device stays as it was.
"""

import hashlib
import os
import struct
import subprocess

import pytest

from storage_core.errors import FilesystemError
from storage_core.executor import Executor
from storage_core.fs import Filesystems

MIB = 1024 * 1024
# mkfs.xfs refuses devices under 300 MB.
XFS_IMAGE_SIZE = 320 * MIB
SMALL_IMAGE_SIZE = 32 * MIB
MARKER = b"fuxi test data that must survive\n" * 64


class RecordingRealExecutor(Executor):
    """The real executor, keeping every argv it ran."""

    def __init__(self):
        self.calls = []

    def run(self, argv, *args, **kwargs):
        self.calls.append([str(a) for a in argv])
        return super().run(argv, *args, **kwargs)

    def ran(self, program_prefix):
        return [c for c in self.calls if c[0].startswith(program_prefix)]


@pytest.fixture
def loop_device(tmp_path):
    """make(size, prepare) -> (device, image): `prepare(image)` writes the image first."""
    devices = []

    def make(size, prepare=None):
        image = tmp_path / f"disk{len(devices)}.img"
        with open(image, "wb") as f:
            f.truncate(size)
        if prepare is not None:
            prepare(image)
        device = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                                capture_output=True, text=True).stdout.strip()
        devices.append(device)
        return device, image

    yield make
    for mountpoint in _mounted_under(tmp_path):
        subprocess.run(["umount", mountpoint], check=False)
    for device in devices:
        subprocess.run(["losetup", "-d", device], check=False)


def _mounted_under(directory):
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(str(directory) + "/")]


def digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def write_mbr(image, first_lba=2048):
    """A DOS partition table by hand: one Linux partition from `first_lba` to the end,
    with data inside the partition but no file system in it."""
    sectors = os.path.getsize(image) // 512
    entry = struct.pack("<B3sB3sII", 0x00, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff",
                        first_lba, sectors - first_lba)
    with open(image, "r+b") as f:
        f.seek(440)
        f.write(struct.pack("<I", 0x46555849) + b"\x00\x00" + entry + b"\x00" * 48 + b"\x55\xaa")
        f.seek(first_lba * 512 + 64 * 1024)
        f.write(MARKER)


def blkid(device) -> str:
    return subprocess.run(["blkid", "-p", "-o", "export", device], capture_output=True, text=True).stdout


def test_a_partition_table_is_never_formatted(loop_device):
    device, image = loop_device(SMALL_IMAGE_SIZE, write_mbr)
    assert "PTTYPE=dos" in blkid(device)  # the signature fuxi must see
    before = digest(image)
    executor = RecordingRealExecutor()
    fs = Filesystems(executor)
    for wanted in ("ext4", "xfs"):
        with pytest.raises(FilesystemError, match="not blank .*PTTYPE.* refusing to format"):
            fs.ensure_filesystem(device, wanted)
    assert executor.ran("mkfs") == []
    assert digest(image) == before


def test_an_xfs_file_system_is_kept_when_ext4_is_asked(loop_device, tmp_path):
    device, image = loop_device(XFS_IMAGE_SIZE)
    subprocess.run(["mkfs.xfs", "-q", device], check=True)
    mountpoint = tmp_path / "mp"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "xfs", device, str(mountpoint)], check=True)
    (mountpoint / "data").write_bytes(MARKER)
    subprocess.run(["umount", str(mountpoint)], check=True)
    before = digest(image)

    executor = RecordingRealExecutor()
    fs = Filesystems(executor)
    assert fs.ensure_filesystem(device, "ext4") == "xfs"
    assert executor.ran("mkfs") == []
    assert digest(image) == before
    # And it mounts as what it is, with the data in it.
    fs.mount(device, str(mountpoint), "xfs")
    try:
        assert (mountpoint / "data").read_bytes() == MARKER
    finally:
        fs.unmount(str(mountpoint))


def test_an_ext4_file_system_is_kept_when_xfs_is_asked(loop_device):
    device, image = loop_device(SMALL_IMAGE_SIZE)
    subprocess.run(["mkfs.ext4", "-q", device], check=True)
    before = digest(image)
    executor = RecordingRealExecutor()
    assert Filesystems(executor).ensure_filesystem(device, "xfs") == "ext4"
    assert executor.ran("mkfs") == [] and digest(image) == before


def test_other_signatures_are_never_formatted(loop_device):
    # A swap area is a file system to blkid (TYPE=swap): kept, never formatted.
    device, image = loop_device(SMALL_IMAGE_SIZE)
    subprocess.run(["mkswap", device], check=True, capture_output=True)
    before = digest(image)
    executor = RecordingRealExecutor()
    assert Filesystems(executor).ensure_filesystem(device, "ext4") == "swap"
    assert executor.ran("mkfs") == [] and digest(image) == before


def test_a_blank_device_is_formatted(loop_device):
    # The same code does format what is truly blank: the refusals above are not vacuous.
    device, _image = loop_device(SMALL_IMAGE_SIZE)
    executor = RecordingRealExecutor()
    assert Filesystems(executor).ensure_filesystem(device, "ext4") == "ext4"
    assert executor.ran("mkfs") == [["mkfs.ext4", "-q", device]]
    assert "TYPE=ext4" in blkid(device)
