import ast
import pathlib
import subprocess

import pytest

from storage_core.attach.share import ShareMounter, parse_nfs_options
from storage_core.config import ShareConfig, VolumeLimits
from storage_core.errors import InvalidInput
from storage_core.executor import CommandResult, Executor
from storage_core.fakes import RecordingExecutor
from storage_core.fs import Filesystems
from storage_core.names import validate_volume_name
from storage_core.options import parse_share_options, parse_volume_options, split_backend

LIMITS = VolumeLimits(default_size_gb=1, max_size_gb=100)
SHARES = ShareConfig(default_proto="NFS", share_type="gold")
BACKENDS = ("cinder", "manila")


def spec_of(options, name="v1"):
    """Split off the backend as the service does, then parse that backend's options."""
    backend, rest = split_backend(name, options, "cinder", BACKENDS)
    if backend == "cinder":
        return parse_volume_options(name, rest, LIMITS)
    return parse_share_options(name, rest, LIMITS, SHARES)


def test_defaults_apply_when_no_options():
    spec = spec_of(None)
    assert (spec.size_gb, spec.fstype, spec.volume_type, spec.availability_zone) == (1, "ext4", None, None)


def test_all_known_options_are_used():
    spec = spec_of({"size": "5", "fstype": "xfs", "type": "fast", "availability_zone": "az1"})
    assert (spec.size_gb, spec.fstype, spec.volume_type, spec.availability_zone) == (5, "xfs", "fast", "az1")


@pytest.mark.parametrize("size", ["abc", "-1", "0", "101", "1.5", "", " ", "١"])
def test_bad_sizes_are_refused_with_the_allowed_range(size):
    with pytest.raises(InvalidInput) as err:
        spec_of({"size": size})
    assert "size=" in str(err.value) and "from 1 to 100" in str(err.value)


def test_unknown_option_lists_known_ones():
    with pytest.raises(InvalidInput) as err:
        spec_of({"sise": "1"})
    message = str(err.value)
    assert "'sise'" in message
    for known in ("size", "type", "availability_zone", "fstype"):
        assert known in message


def test_fstype_outside_allowed_set_is_refused():
    with pytest.raises(InvalidInput) as err:
        spec_of({"fstype": "btrfs"})
    assert "btrfs" in str(err.value) and "ext4, xfs" in str(err.value)


def test_non_string_option_values_are_refused():
    with pytest.raises(InvalidInput):
        spec_of({"size": 1})


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", "x\x00y", "v" * 256, "", "-lead", ".hidden", "sp ace"])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidInput):
        validate_volume_name(name)


@pytest.mark.parametrize("name", ["v", "v1", "my_vol-2.data", "A" * 255])
def test_good_names_pass(name):
    assert validate_volume_name(name) == name


def test_share_options_with_defaults_from_config():
    spec = spec_of({"backend": "manila"})
    assert (spec.proto, spec.size_gb, spec.share_type, spec.adopt_share_id) == ("NFS", 1, "gold", None)
    spec = spec_of({"backend": "Manila", "proto": "cephfs", "size": "3", "share_type": "fast",
                    "share_network": "net1", "availability_zone": "az2"})
    assert (spec.proto, spec.size_gb, spec.share_type, spec.share_network, spec.availability_zone) == (
        "CEPHFS", 3, "fast", "net1", "az2")


def test_unknown_backend_lists_the_enabled_ones():
    with pytest.raises(InvalidInput, match=r"backend='swift'.*allowed: cinder, manila"):
        spec_of({"backend": "swift"})


def test_options_of_the_other_backend_are_refused_by_name():
    with pytest.raises(InvalidInput, match=r"'fstype' for a Manila share; known options: backend, size, proto"):
        spec_of({"backend": "manila", "fstype": "xfs"})
    with pytest.raises(InvalidInput, match=r"'proto' for a Cinder volume"):
        spec_of({"proto": "nfs"})


@pytest.mark.parametrize("proto", ["cifs", "hdfs", "", "nfs4"])
def test_share_protocols_outside_the_mountable_ones_are_refused(proto):
    with pytest.raises(InvalidInput, match="allowed: nfs, cephfs, glusterfs"):
        spec_of({"backend": "manila", "proto": proto})


def test_adopting_a_share_takes_nothing_but_its_id():
    spec = spec_of({"backend": "manila", "share_id": "0f6e"})
    assert spec.adopt_share_id == "0f6e"
    with pytest.raises(InvalidInput, match="drop proto, size"):
        spec_of({"backend": "manila", "share_id": "0f6e", "size": "2", "proto": "nfs"})


def test_adopting_a_volume_takes_nothing_but_its_uuid():
    vid = "0F6E1C2A-8B4D-4E2F-9A1B-3C4D5E6F7A8B"
    spec = spec_of({"volume_id": vid})
    assert (spec.adopt_volume_id, spec.size_gb, spec.fstype) == (vid.lower(), 0, "")
    assert spec_of({"backend": "cinder", "volume_id": vid}).adopt_volume_id == vid.lower()
    assert spec_of({"size": "2"}).adopt_volume_id is None
    with pytest.raises(InvalidInput, match="drop fstype, size .*the volume's own"):
        spec_of({"volume_id": vid, "size": "2", "fstype": "xfs"})
    with pytest.raises(InvalidInput, match="volume_id='../x' is not a Cinder volume id; allowed: a UUID"):
        spec_of({"volume_id": "../x"})


# -- values that could never be sizes, found by tests/functional/test_fuzz.py -------------

@pytest.mark.parametrize("size", ["9" * 5000, "1" * 4301, "0" * 5000 + "1" * 10, "99999999999"])
def test_sizes_of_thousands_of_digits_are_out_of_range_and_not_echoed_whole(size):
    with pytest.raises(InvalidInput, match="out of range") as err:
        spec_of({"size": size})
    assert len(str(err.value)) < 200


def test_leading_zeros_do_not_make_a_size_too_long():
    assert spec_of({"size": "0" * 50 + "7"}).size_gb == 7


@pytest.mark.parametrize("options", [
    {"x" * 100_000: "1"},
    {"fstype": "e" * 100_000},
    {"backend": "b" * 100_000},
    {"type": "t" * 100_000},
    {"size": "s" * 100_000},
    {"backend": "manila", "proto": "p" * 100_000},
    {"k" * 100_000: 1},
])
def test_refusals_quote_a_huge_value_shortened(options):
    with pytest.raises(InvalidInput) as err:
        spec_of(options)
    assert len(str(err.value)) < 400


# -- option values never reach a shell ----------------------------------------------------
#
# A caller's option values are checked against allowed sets before anything runs, and
# every command is an argv list run without a shell: a value can neither add a command
# nor add an option to mkfs or mount.

INJECTED_FSTYPES = [
    "ext4; rm -rf /", "ext4 && reboot", "ext4 | sh", "$(reboot)", "`reboot`", "ext4\n", "ext4\nxfs",
    "ext4\x00", "ext4\x00; rm -rf /", "-F", "--force", "ext4 -F", "-O ^has_journal", "ext4 -E nodiscard",
    "xfs -f", "xfs -d size=1g", "ext4 /dev/sda", "/dev/sda", "EXT4", " ext4", "ext4 ", "ext3", "vfat", "",
]


@pytest.mark.parametrize("fstype", INJECTED_FSTYPES)
def test_fstype_injections_are_refused_before_any_command(fstype):
    with pytest.raises(InvalidInput, match="allowed: ext4, xfs"):
        spec_of({"fstype": fstype})


@pytest.mark.parametrize("fstype", INJECTED_FSTYPES)
def test_mkfs_refuses_an_fstype_outside_its_table_and_runs_nothing(tmp_path, fstype):
    # Even past option parsing (an fstype tag on a volume someone else edited):
    executor = RecordingExecutor({("blkid",): CommandResult("", "", 2)})
    fs = Filesystems(executor, mountinfo_path=str(tmp_path / "none"))
    with pytest.raises(InvalidInput, match="not supported"):
        fs.ensure_filesystem("/dev/loop9", fstype)
    assert [c[0] for c in executor.calls] == ["blkid"]


@pytest.mark.parametrize("fstype", ["ext4", "xfs"])
def test_mkfs_and_mount_argv_keep_every_value_in_its_own_argument(tmp_path, fstype):
    executor = RecordingExecutor({("blkid",): CommandResult("", "", 2)})
    fs = Filesystems(executor, mountinfo_path=str(tmp_path / "none"))
    mountpoint = str(tmp_path / "a b;c")
    assert fs.ensure_filesystem("/dev/loop9", spec_of({"fstype": fstype}).fstype) == fstype
    fs.mount("/dev/loop9", mountpoint, fstype)
    assert executor.calls == [
        ["blkid", "-p", "-o", "export", "/dev/loop9"],
        [f"mkfs.{fstype}", "-q", "/dev/loop9"],
        # xfs: nouuid, or a copy of a volume mounted here (same UUID) could not be mounted.
        ["mount", "-t", fstype, *(["-o", "nouuid"] if fstype == "xfs" else []), "/dev/loop9", mountpoint],
    ]


@pytest.mark.parametrize("key", ["type", "availability_zone"])
@pytest.mark.parametrize("value", ["fast\n", "fast\x00", "a\r\nb", "\t", "x" * 256, ""])
def test_text_options_must_be_printable_and_short(key, value):
    with pytest.raises(InvalidInput, match="printable characters"):
        spec_of({key: value})


@pytest.mark.parametrize("key", ["share_type", "share_network", "availability_zone", "share_id"])
@pytest.mark.parametrize("value", ["gold\n", "gold\x00", "\x1b[31m", "x" * 256])
def test_share_text_options_must_be_printable_and_short(key, value):
    with pytest.raises(InvalidInput, match="printable characters"):
        spec_of({"backend": "manila", key: value})


@pytest.mark.parametrize("proto", ["nfs; reboot", "nfs -o exec", "glusterfs,exec", "cephfs\x00", "nfs\nexec"])
def test_share_protocol_injections_are_refused(proto):
    with pytest.raises(InvalidInput, match="allowed: nfs, cephfs, glusterfs"):
        spec_of({"backend": "manila", "proto": proto})


def test_a_protocol_is_used_as_its_normal_name_only():
    # Surrounding whitespace is forgiven, but what is used is the known name, not the value.
    assert spec_of({"backend": " manila\n", "proto": "nfs\n"}).proto == "NFS"


@pytest.mark.parametrize("options", [
    "rw,exec", "vers=4.1,exec", "vers=4.1,suid", "vers=4.1,dev", "defaults", "remount", "bind",
    "vers=4.1;reboot", "vers=4.1 -o exec", "vers=4.1\x00", "vers=4.1\x00exec", "hard,-oexec",
    "vers=4.1,context=system_u", "sec=sys,exec", "timeo=1\nexec", "port=$(reboot)",
])
def test_nfs_mount_options_outside_the_allowed_set_are_refused(tmp_path, options):
    with pytest.raises(InvalidInput, match="is not allowed"):
        parse_nfs_options(options)
    with pytest.raises(InvalidInput):
        ShareMounter(RecordingExecutor(), None, str(tmp_path / "keys"), nfs_options=options)


def test_nfs_mount_options_reach_mount_as_one_checked_argument(tmp_path):
    executor = RecordingExecutor()

    class Mounted:
        def is_mounted(self, mountpoint):
            return True

    mounter = ShareMounter(executor, Mounted(), str(tmp_path / "keys"), nfs_options=" vers=4.1 , hard\n,")
    mounter.mount("nfs", "10.0.0.5:/share", str(tmp_path / "mp"))
    assert executor.calls == [["mount", "-t", "nfs", "-o", "vers=4.1,hard", "10.0.0.5:/share",
                               str(tmp_path / "mp")]]


STORAGE_PACKAGES = [pathlib.Path(__file__).resolve().parents[2] / p for p in ("storage_core", "fuxi")]
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput"), ("pty", "spawn")}


def _shell_uses(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append(f"{path}:{node.lineno}: shell={ast.unparse(kw.value)}")
            func = node.func
            if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                    and ((func.value.id, func.attr) in SHELL_CALLS or func.attr.startswith(("execl", "spawnl")))):
                found.append(f"{path}:{node.lineno}: {func.value.id}.{func.attr}")
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess", "pty"):
            for alias in node.names:
                if (node.module, alias.name) in SHELL_CALLS:
                    found.append(f"{path}:{node.lineno}: from {node.module} import {alias.name}")
    return found


def test_the_shell_check_sees_each_way_of_asking_for_one(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import os, subprocess\nfrom os import popen\n"
        "subprocess.run('ls', shell=True)\nsubprocess.Popen('ls', shell=flag)\n"
        "os.system('ls')\nos.popen('ls')\nos.execlp('sh', 'sh')\nsubprocess.run(['ls'], shell=False)\n"
    )
    assert len(_shell_uses(planted)) == 6


def test_no_code_of_storage_core_or_fuxi_runs_a_shell():
    files = [f for package in STORAGE_PACKAGES for f in package.rglob("*.py")]
    assert len(files) > 30
    found = [use for f in files for use in _shell_uses(f)]
    assert found == []


def test_the_executor_hands_subprocess_an_argv_list_and_no_shell(monkeypatch):
    seen = []

    def fake_run(argv, **kwargs):
        seen.append((argv, kwargs))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    Executor().run(["mkfs.ext4", "-q", "/dev/loop9; rm -rf /"])
    [(argv, kwargs)] = seen
    assert argv == ["mkfs.ext4", "-q", "/dev/loop9; rm -rf /"]
    assert not kwargs.get("shell") and "executable" not in kwargs and "preexec_fn" not in kwargs
