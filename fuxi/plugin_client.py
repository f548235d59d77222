"""The `fuxi` CLI's side of the plugin socket: JSON posted over the unix socket
with requests-unixsocket, as dockerd posts it."""

import json
import urllib.parse

import requests
import requests_unixsocket

DEFAULT_SOCKET = "/run/docker/plugins/fuxi.sock"
# A fill makes, formats, attaches and mounts volumes: allow it well over Docker's 120 s.
CALL_TIMEOUT = 300


class CLIError(Exception):
    """What the user should read: a message, no traceback."""


def unix_url(socket_path, path) -> str:
    return "http+unix://" + urllib.parse.quote(socket_path, safe="") + path


class Plugin:
    def __init__(self, socket, timeout=CALL_TIMEOUT):
        self.socket = socket
        self.timeout = timeout
        self.session = requests_unixsocket.Session()

    def post(self, path, body=None, timeout=None) -> requests.Response:
        """The raw answer; OSError (requests' connection errors are OSErrors) when there is none."""
        return self.session.post(unix_url(self.socket, path), data=json.dumps(body or {}),
                                 timeout=timeout or self.timeout)

    def call(self, path, body=None, timeout=None):
        """The answer's JSON; CLIError when the server cannot be reached or answers an error."""
        try:
            resp = self.post(path, body, timeout)
        except OSError as exc:
            raise CLIError(f"cannot reach fuxi-server on {self.socket}: {exc}; is it running? "
                           "(`fuxi doctor` checks the set-up; --socket PATH picks another socket)") from None
        try:
            answer = resp.json()
        except ValueError:
            raise CLIError(f"{path}: fuxi-server answered HTTP {resp.status_code} without JSON") from None
        if not isinstance(answer, dict):
            raise CLIError(f"{path}: fuxi-server answered HTTP {resp.status_code} with {type(answer).__name__}, "
                           "not a JSON object")
        if answer.get("Err"):
            raise CLIError(answer["Err"])
        return answer
