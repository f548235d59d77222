from pathlib import Path

import pytest

from fuxi import sample_config, settings
from storage_core.pool.settings import POOL_OPTIONS
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


def test_the_sample_config_is_the_one_made_from_the_option_definitions():
    sample = (Path(__file__).resolve().parents[2] / "etc" / "fuxi.conf.sample").read_text()
    assert sample == sample_config.render(), (
        "etc/fuxi.conf.sample is out of date: run python -m fuxi.sample_config > etc/fuxi.conf.sample"
    )


def test_the_sample_config_uncommented_loads_every_default(tmp_path):
    # Each "#name = value" line, uncommented, must be a valid setting equal to the default.
    uncommented = [line[1:] if line.startswith("#") and not line.startswith("# ") else line
                   for line in sample_config.render().splitlines()]
    conf = tmp_path / "fuxi.conf"
    conf.write_text("\n".join(uncommented) + "\n")
    loaded = settings.load(["--config-file", str(conf)])
    assert loaded.values == {o.name: o.default for o in settings.OPTIONS}
    (pool,) = loaded.pools
    defaults = {o.field: o.default for o in POOL_OPTIONS.values()}
    assert {f: getattr(pool, f) for f in defaults} == {**defaults, "volume_type": None, "availability_zone": None}


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


# -- the TCP listener ---------------------------------------------------------

def _self_signed(directory):
    """A self-signed certificate and its key (serving as its own client CA here)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuxi unit test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def _load(tmp_path, **options):
    conf = tmp_path / "fuxi.conf"
    conf.write_text("[fuxi]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()))
    return settings.load(["--config-file", str(conf)])


def test_no_tcp_listener_by_default():
    assert settings.load([]).tcp_listener() is None


@pytest.mark.parametrize("where, bind", [
    ("127.0.0.1:2376", "127.0.0.1:2376"),
    ("0.0.0.0:2376", "0.0.0.0:2376"),
    ("[::1]:2376", "[::1]:2376"),
    ("node7.example:443", "node7.example:443"),
])
def test_tcp_listener_with_every_tls_file(tmp_path, where, bind):
    cert, key = _self_signed(tmp_path)
    listener = _load(tmp_path, tcp_listen=where, tls_cert_file=cert, tls_key_file=key,
                     tls_client_ca_file=cert).tcp_listener()
    assert (listener.bind, listener.cert_file, listener.key_file, listener.client_ca_file) == (
        bind, cert, key, cert)


@pytest.mark.parametrize("given, missing", [
    ((), "tls_cert_file, tls_key_file, tls_client_ca_file are not set"),
    (("tls_cert_file", "tls_key_file"), "but tls_client_ca_file is not set"),
    (("tls_client_ca_file",), "but tls_cert_file, tls_key_file are not set"),
])
def test_tcp_listen_without_all_tls_files_is_a_start_up_error(tmp_path, given, missing):
    cert, key = _self_signed(tmp_path)
    files = {"tls_cert_file": cert, "tls_key_file": key, "tls_client_ca_file": cert}
    with pytest.raises(settings.SettingsError, match="needs TLS with client certificates") as caught:
        _load(tmp_path, tcp_listen="127.0.0.1:2376", **{k: files[k] for k in given})
    assert missing in str(caught.value)


@pytest.mark.parametrize("where, message", [
    ("2376", "is not HOST:PORT"),
    (":2376", "is not HOST:PORT"),
    ("127.0.0.1:", "is not HOST:PORT"),
    ("127.0.0.1:https", "is not HOST:PORT"),
    ("::1:2376", "put an IPv6 address in brackets"),
    ("127.0.0.1:70000", "port 70000 is not between 1 and 65535"),
])
def test_bad_tcp_listen_addresses_are_named(tmp_path, where, message):
    cert, key = _self_signed(tmp_path)
    with pytest.raises(settings.SettingsError, match=message):
        _load(tmp_path, tcp_listen=where, tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=cert)


def test_tls_files_that_do_not_load_are_start_up_errors(tmp_path):
    cert, key = _self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _other_cert, other_key = _self_signed(other)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    good = {"tcp_listen": "127.0.0.1:2376", "tls_cert_file": cert, "tls_key_file": key,
            "tls_client_ca_file": cert}
    cases = [
        ({"tls_cert_file": str(tmp_path / "nope.pem")}, "tls_cert_file = .*nope.pem: no such file"),
        ({"tls_key_file": other_key}, "do not load as a PEM certificate and its private key"),
        ({"tls_client_ca_file": str(garbage)}, "tls_client_ca_file = .*garbage.pem does not load"),
    ]
    for change, message in cases:
        with pytest.raises(settings.SettingsError, match=message):
            _load(tmp_path, **{**good, **change})
