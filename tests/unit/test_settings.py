from pathlib import Path

import pytest

from fuxi import settings
from storage_core.errors import ConfigError


def test_defaults(monkeypatch):
    monkeypatch.delenv("OS_CLOUD", raising=False)
    s = settings.load([])
    assert s.socket == "/run/docker/plugins/fuxi.sock" and s.state_dir == "/var/lib/fuxi"
    assert s.devcloud is False
    assert not s.storage_config().cloud.configured


def test_flags_win_over_the_config_file(tmp_path):
    conf = tmp_path / "fuxi.conf"
    conf.write_text("[fuxi]\nsocket = /from/file.sock\nstate_dir = /from/file\ndevcloud = true\nmax_size_gb = 7\n")
    s = settings.load(["--config-file", str(conf), "--socket", "/from/flag.sock"])
    assert s.socket == "/from/flag.sock" and s.state_dir == "/from/file" and s.devcloud is True
    config = s.storage_config()
    assert config.limits.max_size_gb == 7
    assert config.effective_mount_root == "/from/file/mounts"


def test_cloud_from_config_or_os_cloud(tmp_path, monkeypatch):
    monkeypatch.setenv("OS_CLOUD", "fromenv")
    assert settings.load([]).storage_config().cloud.cloud_name == "fromenv"
    conf = tmp_path / "fuxi.conf"
    conf.write_text("[fuxi]\ncloud = fromfile\n")
    assert settings.load(["--config-file", str(conf)]).storage_config().cloud.cloud_name == "fromfile"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[fuxi]\nsokcet = /x\n", "unknown option 'sokcet'"),
        ("[fuxi]\nmax_size_gb = lots\n", "not a valid int"),
        ("[other]\n", "no [fuxi] section"),
        ("[fuxi]\ndevcloud = maybe\n", "not a valid bool"),
    ],
)
def test_bad_config_files_are_named(tmp_path, text, needle):
    conf = tmp_path / "fuxi.conf"
    conf.write_text(text)
    with pytest.raises(settings.SettingsError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        settings.load(["--config-file", str(conf)])


def test_unsupported_fstype_in_config_is_refused():
    s = settings.Settings({**{o.name: o.default for o in settings.OPTIONS}, "allowed_fstypes": "ext4,zfs"})
    with pytest.raises(settings.SettingsError, match="zfs"):
        s.storage_config()


def test_the_sample_config_documents_every_option_with_its_default():
    sample = (Path(__file__).resolve().parents[2] / "etc" / "fuxi.conf.sample").read_text()
    for option in settings.OPTIONS:
        default = option.default
        shown = str(default).lower() if isinstance(default, bool) else (
            f"{default:g}" if isinstance(default, float) else str(default))
        line = f"#{option.name} = {shown}".rstrip()
        assert line in sample.splitlines(), f"etc/fuxi.conf.sample lacks {line!r}"


def test_share_settings_reach_the_storage_config(tmp_path):
    conf = tmp_path / "fuxi.conf"
    conf.write_text("[fuxi]\nbackends = Cinder, manila\ndefault_backend = manila\ndefault_share_proto = cephfs\n"
                    "cephfs_client = kernel\nceph_conf = /etc/ceph/x.conf\ncephx_client_id = node7\n"
                    "nfs_mount_options = vers=3,hard\n")
    config = settings.load(["--config-file", str(conf)]).storage_config()
    assert (config.backends, config.default_backend) == (("cinder", "manila"), "manila")
    shares = config.shares
    assert (shares.default_proto, shares.cephfs_client, shares.ceph_conf, shares.cephx_client_id,
            shares.nfs_mount_options) == ("CEPHFS", "kernel", "/etc/ceph/x.conf", "node7", "vers=3,hard")


@pytest.mark.parametrize("lines,message", [
    ("default_share_proto = cifs\n", "default share protocol 'CIFS' is not supported"),
    ("cephfs_client = rbd\n", "cephfs_client 'rbd' is not supported"),
    ("nfs_mount_options = vers=4.1,exec=/bin/sh\n", "NFS mount option 'exec=/bin/sh' is not allowed"),
    ("backends = cinder\ndefault_backend = manila\n", "default_backend 'manila' is not among"),
    ("backends = cinder,s3\n", "use one or more of cinder, manila"),
])
def test_bad_share_settings_are_start_up_errors(tmp_path, lines, message):
    conf = tmp_path / "fuxi.conf"
    conf.write_text("[fuxi]\n" + lines)
    # Either is a start-up error fuxi-server prints and exits 2 on.
    with pytest.raises((settings.SettingsError, ConfigError), match=message):
        settings.load(["--config-file", str(conf)]).storage_config()
