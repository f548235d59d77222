import os
import socket
import subprocess
import sys

import pytest

from fuxi import server
from fuxi.systemd_integration import ReadinessNotifier, passed_socket_paths


def test_not_socket_activated_without_systemds_variables(monkeypatch):
    monkeypatch.delenv("LISTEN_PID", raising=False)
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert passed_socket_paths() == []


def test_variables_meant_for_another_process_are_not_ours(monkeypatch):
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert passed_socket_paths() == []


def test_the_paths_of_the_passed_sockets_are_read_and_the_variables_kept(tmp_path):
    # In a child, where fd 3 can be made the listening socket as systemd would.
    path = tmp_path / "passed.sock"
    code = f"""
import os, socket
from fuxi.systemd_integration import passed_socket_paths
listener = socket.socket(socket.AF_UNIX)
listener.bind({str(path)!r}); listener.listen()
os.dup2(listener.fileno(), 3)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
print(passed_socket_paths(), os.environ["LISTEN_FDS"], socket.socket(fileno=3).getsockname())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [f"['{path}']", "1", str(path)]


def test_readiness_is_sent_as_one_datagram(tmp_path):
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(tmp_path / "notify"))
    receiver.settimeout(5)
    ReadinessNotifier(str(tmp_path / "notify")).notify("READY=1", "STATUS=serving")
    assert receiver.recv(100) == b"READY=1\nSTATUS=serving"


def test_an_abstract_notify_socket_is_reached():
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"fuxi-test-{os.getpid()}"
    receiver.bind("\0" + name)
    receiver.settimeout(5)
    ReadinessNotifier("@" + name).notify("STOPPING=1")
    assert receiver.recv(100) == b"STOPPING=1"


def test_the_notify_socket_is_taken_out_of_the_environment(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    notifier = ReadinessNotifier.take_from_environment()
    assert notifier.address == "/run/systemd/notify" and "NOTIFY_SOCKET" not in os.environ


def test_without_systemd_notifying_does_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    ReadinessNotifier.take_from_environment().notify("READY=1")  # no error, nothing sent
    # A notify socket that went away is logged, never raised into the server.
    ReadinessNotifier(str(tmp_path / "gone")).notify("READY=1")


class _SettingsWithTcp:
    socket = "/run/docker/plugins/fuxi.sock"
    tcp_listen = "127.0.0.1:2376"

    def tcp_listener(self):
        return object()


def test_socket_activation_refuses_a_tcp_listener_it_could_not_serve():
    with pytest.raises(server.StartupError, match="tcp_listen = 127.0.0.1:2376 cannot be served under socket"):
        server.check_passed_sockets(_SettingsWithTcp(), ["/run/docker/plugins/fuxi.sock"])
