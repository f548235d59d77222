import pytest

from fuxi import settings


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
