"""The TCP listener: none unless configured; when configured, TLS with client
certificates signed by the configured CA, and nothing else; the unix socket
keeps serving dockerd in plain HTTP beside it.

A throwaway PKI is made for each test: a CA, the server's certificate (for
127.0.0.1), a client certificate of that CA, and a second CA with a client
certificate of its own that the server must refuse.
"""

import datetime
import http.client
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass

import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.functional.harness import DOCKER_HEADERS, ok

CLOUD_KINDS = ("devcloud",)  # about fuxi's listener, not the cloud behind it


# -- a throwaway PKI ----------------------------------------------------------

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key, path):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


def _write_cert(cert, path):
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _certificate(subject_cn, key, issuer_cn, issuer_key, *, ca=False, server_ip=None, client=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject_cn)).issuer_name(_name(issuer_cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                        critical=False)
    else:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    if server_ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if client:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    stranger_cert: str  # a client certificate of another CA
    stranger_key: str


def make_pki(directory) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    new_key = lambda: ec.generate_private_key(ec.SECP256R1())  # noqa: E731
    ca_key, other_ca_key = new_key(), new_key()
    ca = _certificate("fuxi test CA", ca_key, "fuxi test CA", ca_key, ca=True)
    server_key, client_key, stranger_key = new_key(), new_key(), new_key()
    return Pki(
        ca=_write_cert(ca, directory / "ca.pem"),
        server_cert=_write_cert(_certificate("fuxi-server", server_key, "fuxi test CA", ca_key,
                                             server_ip="127.0.0.1"), directory / "server.pem"),
        server_key=_write_key(server_key, directory / "server.key"),
        client_cert=_write_cert(_certificate("client", client_key, "fuxi test CA", ca_key, client=True),
                                directory / "client.pem"),
        client_key=_write_key(client_key, directory / "client.key"),
        stranger_cert=_write_cert(_certificate("stranger", stranger_key, "other CA", other_ca_key,
                                               client=True), directory / "stranger.pem"),
        stranger_key=_write_key(stranger_key, directory / "stranger.key"),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- clients -----------------------------------------------------------------

def client_context(pki, cert=None, key=None, tls12=False):
    """A client that trusts the test CA and presents `cert` (none when None)."""
    context = ssl.create_default_context(cafile=pki.ca)
    if cert:
        context.load_cert_chain(cert, key)
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def activate_over_tls(port, context, timeout=10, times=1):
    """Plugin.Activate `times` times on one kept-alive TLS connection: the last answer."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    try:
        for _ in range(times):
            conn.request("POST", "/Plugin.Activate", body=b"", headers=DOCKER_HEADERS)
            resp = conn.getresponse()
            answer = resp.status, json.loads(resp.read())
        return answer
    finally:
        conn.close()


def refused(port, context):
    """True when no HTTP answer comes back: the TLS handshake (or, on TLS 1.3,
    the first read after it, where the server's alert lands) fails."""
    try:
        activate_over_tls(port, context)
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected) as exc:
        return exc
    return False


def listening(process: psutil.Process):
    """The TCP addresses `process` listens on."""
    return sorted((c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="inet")
                  if c.status == psutil.CONN_LISTEN)


def master_and_worker(plugin):
    master = psutil.Process(plugin.process.pid)
    workers = [p for p in master.children() if "fuxi.server" in " ".join(p.cmdline())]
    assert workers, "no gunicorn worker under the master"
    return [master, *workers]


def tls_options(pki, port):
    return {"tcp_listen": f"127.0.0.1:{port}", "tls_cert_file": pki.server_cert,
            "tls_key_file": pki.server_key, "tls_client_ca_file": pki.ca}


# -- tests -------------------------------------------------------------------

def test_without_tcp_listen_nothing_listens_on_tcp(plugin):
    ok(plugin.call("Plugin.Activate", b""))
    for process in master_and_worker(plugin):
        assert listening(process) == [], f"{process.pid} {process.cmdline()} listens on TCP"


def test_tcp_listener_serves_only_clients_with_a_certificate_of_the_ca(plugin_factory, tmp_path):
    pki = make_pki(tmp_path / "pki")
    port = free_port()
    plugin = plugin_factory(options=tls_options(pki, port)).start()
    for process in master_and_worker(plugin):
        assert listening(process) == [("127.0.0.1", port)]

    # A client with a certificate of the configured CA is served.
    good = client_context(pki, pki.client_cert, pki.client_key)
    assert activate_over_tls(port, good, times=3) == (200, {"Implements": ["VolumeDriver"]})
    assert activate_over_tls(port, client_context(pki, pki.client_cert, pki.client_key, tls12=True)) == (
        200, {"Implements": ["VolumeDriver"]})

    # No certificate, or one of another CA: refused. On TLS 1.2 the handshake
    # itself fails on the client's side too.
    assert refused(port, client_context(pki))
    assert refused(port, client_context(pki, pki.stranger_cert, pki.stranger_key))
    for cert, key in ((None, None), (pki.stranger_cert, pki.stranger_key)):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            client_context(pki, cert, key, tls12=True).wrap_socket(raw, server_hostname="127.0.0.1").close()
        raw.close()

    # Plain HTTP on the TLS port: the connection is closed without an answer.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"POST /Plugin.Activate HTTP/1.1\r\nHost: \r\nContent-Length: 0\r\n\r\n")
        answer = b""
        try:
            while chunk := raw.recv(4096):
                answer += chunk
        except ConnectionError:
            pass
    assert not answer.startswith(b"HTTP/"), answer

    # The unix socket serves dockerd, in plain HTTP, beside it (a whole volume call too).
    ok(plugin.call("Plugin.Activate", b""))
    ok(plugin.call("VolumeDriver.Create", {"Name": "beside", "Opts": {}}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "beside"}))
    # ... and the good client still is, after the refusals.
    assert activate_over_tls(port, good)[0] == 200
    log = plugin.log(tail=None)
    assert "refused at the TLS handshake" in log and "Traceback" not in log


@pytest.mark.parametrize("given", [(), ("tls_cert_file", "tls_key_file")])
def test_tcp_listen_without_tls_files_refuses_to_start(plugin_factory, tmp_path, given):
    pki = make_pki(tmp_path / "pki")
    options = {k: v for k, v in tls_options(pki, free_port()).items() if k == "tcp_listen" or k in given}
    plugin = plugin_factory(options=options)
    result = subprocess.run(
        [sys.executable, "-m", "fuxi.server", "--socket", plugin.socket, "--state-dir", plugin.state_dir,
         *plugin.cloud_args],
        capture_output=True, text=True, env=plugin.env, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    missing = [o for o in ("tls_cert_file", "tls_key_file", "tls_client_ca_file") if o not in given]
    assert "needs TLS with client certificates" in result.stderr
    for option in missing:
        assert option in result.stderr.split("but")[1].split("not set")[0]
    assert not os.path.exists(plugin.socket)
