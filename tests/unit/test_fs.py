import pytest

from storage_core.errors import FilesystemError
from storage_core.executor import CommandResult
from storage_core.fakes import RecordingExecutor
from storage_core.fs import Filesystems, parse_mountinfo

MOUNTINFO = (
    "22 1 0:21 / / rw - overlay overlay rw\n"
    "88 22 7:3 / /var/lib/fuxi/mounts/my\\040vol rw,relatime shared:1 - ext4 /dev/loop3 rw\n"
)


def fs_with(blkid_result, tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    executor = RecordingExecutor({("blkid",): blkid_result})
    return Filesystems(executor, mountinfo_path=str(info)), executor


def test_blank_device_is_formatted(tmp_path):
    fs, executor = fs_with(CommandResult("", "", 2), tmp_path)
    assert fs.ensure_filesystem("/dev/loop9", "xfs") == "xfs"
    assert executor.calls == [["blkid", "-p", "-o", "export", "/dev/loop9"], ["mkfs.xfs", "-q", "/dev/loop9"]]


def test_existing_filesystem_is_never_formatted(tmp_path):
    fs, executor = fs_with(CommandResult("DEVNAME=/dev/loop9\nTYPE=ext4\n", "", 0), tmp_path)
    assert fs.ensure_filesystem("/dev/loop9", "xfs") == "ext4"
    assert not any(c[0].startswith("mkfs") for c in executor.calls)


def test_other_signature_is_refused_not_formatted(tmp_path):
    fs, executor = fs_with(CommandResult("PTTYPE=gpt\n", "", 0), tmp_path)
    with pytest.raises(FilesystemError, match="refusing to format"):
        fs.ensure_filesystem("/dev/loop9", "ext4")
    assert not any(c[0].startswith("mkfs") for c in executor.calls)


def test_blkid_failure_is_not_taken_for_blank(tmp_path):
    fs, executor = fs_with(CommandResult("", "bad", 4), tmp_path)
    with pytest.raises(FilesystemError):
        fs.ensure_filesystem("/dev/loop9", "ext4")
    assert len(executor.calls) == 1


def test_mountinfo_is_parsed_with_escapes(tmp_path):
    entries = parse_mountinfo(MOUNTINFO)
    assert entries[1].mountpoint == "/var/lib/fuxi/mounts/my vol"
    assert entries[1].source == "/dev/loop3" and entries[1].fstype == "ext4"
    fs, executor = fs_with(CommandResult("", "", 0), tmp_path)
    assert fs.is_mounted("/var/lib/fuxi/mounts/my vol")
    fs.unmount("/nowhere")  # not mounted: nothing to run
    assert executor.calls == []
    fs.unmount("/var/lib/fuxi/mounts/my vol")
    assert executor.calls == [["umount", "/var/lib/fuxi/mounts/my vol"]]
