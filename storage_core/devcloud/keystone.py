"""Keystone v3 emulation: one domain, one user, one project, password tokens.

Tokens are self-contained and signed (HMAC-SHA256) with a key kept in the
store, like Keystone's Fernet tokens: no token table to grow, and every token
stays valid across a devcloud restart until it expires or is revoked.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from datetime import datetime, timezone

from storage_core.devcloud.faults import apply_fault
from storage_core.devcloud.web import Response, keystone_error, keystone_time

LOG = logging.getLogger(__name__)

DEFAULT_USERNAME = "fuxi"
DEFAULT_PASSWORD = "devcloud"
DEFAULT_PROJECT_NAME = "fuxi"
DEFAULT_DOMAIN_NAME = "Default"
DEFAULT_DOMAIN_ID = "default"
REGION_NAME = "RegionOne"
#: Keystone's default token lifetime; keystoneauth re-authenticates by itself.
TOKEN_TTL = 3600

_AUTH_FAILED = "The request you have made requires authentication."
_KEYSTONE_VERSION = {
    "id": "v3.14",
    "status": "stable",
    "updated": "2020-04-07T00:00:00Z",
    "media-types": [
        {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
    ],
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Identity:
    """Answers ``/identity/...`` and checks tokens for the other services."""

    def __init__(self, store, base_url, faults, password=DEFAULT_PASSWORD):
        """``base_url`` is a callable: the port is only known once listening."""
        self._store = store
        self._base_url = base_url
        self._faults = faults
        self._password = password
        self.user_id = store.setting("keystone.user_id", lambda: uuid.uuid4().hex)
        self.project_id = store.setting("keystone.project_id", lambda: uuid.uuid4().hex)
        self._key = _unb64(
            store.setting("keystone.token_key", lambda: _b64(secrets.token_bytes(32)))
        )
        # Revocations only matter until the token would have expired anyway.
        for revoked in store.list("revoked"):
            if revoked["expires"] <= time.time():
                store.delete("revoked", revoked["id"])
        self.roles = [
            {"id": uuid.uuid5(uuid.NAMESPACE_URL, f"devcloud-role-{n}").hex, "name": n}
            for n in ("admin", "member", "reader")
        ]
        if faults is not None:
            faults.bind_identity(self)  # for expire_tokens faults

    # -- documents -----------------------------------------------------------

    def _version(self):
        return dict(
            _KEYSTONE_VERSION,
            links=[{"rel": "self", "href": f"{self._base_url()}/identity/v3/"}],
        )

    def catalog(self):
        base = self._base_url()
        volume_url = f"{base}/volume/v3/{self.project_id}"

        def service(type_, name, url):
            endpoints = [
                {
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{type_}-{iface}").hex,
                    "interface": iface,
                    "region": REGION_NAME,
                    "region_id": REGION_NAME,
                    "url": url,
                }
                for iface in ("public", "internal", "admin")
            ]
            return {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, f"service-{type_}").hex,
                "type": type_,
                "name": name,
                "endpoints": endpoints,
            }

        # Both block-storage and volumev3: older clients look up the latter.
        # Compute without a project id in its URL, as devstack registers it.
        return [
            service("identity", "keystone", f"{base}/identity"),
            service("block-storage", "cinder", volume_url),
            service("volumev3", "cinderv3", volume_url),
            service("compute", "nova", f"{base}/compute/v2.1"),
            # Manila without a project id, as devstack registers it since
            # Yoga; sharev2 for clients that look up the old name.
            service("shared-file-system", "manila", f"{base}/share/v2"),
            service("sharev2", "manilav2", f"{base}/share/v2"),
        ]

    def _domain(self):
        return {"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME}

    def _project(self):
        return {"id": self.project_id, "name": DEFAULT_PROJECT_NAME, "domain": self._domain()}

    def _token_body(self, claims):
        def when(epoch):
            return keystone_time(datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None))

        token = {
            "methods": claims["m"],
            "user": {
                "id": self.user_id,
                "name": DEFAULT_USERNAME,
                "domain": self._domain(),
                "password_expires_at": None,
            },
            "audit_ids": [claims["a"]],
            "expires_at": when(claims["e"]),
            "issued_at": when(claims["i"]),
        }
        if claims.get("p"):
            token.update(
                project=self._project(),
                is_domain=False,
                roles=self.roles,
                catalog=self.catalog(),
            )
        return {"token": token}

    # -- tokens --------------------------------------------------------------

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def _issue(self, project_id, methods, expires=None):
        now = int(time.time())
        claims = {
            "u": self.user_id,
            "p": project_id,
            "m": methods,
            "i": now,
            "e": expires or now + TOKEN_TTL,
            "a": _b64(secrets.token_bytes(16)),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._sign(payload)}", claims

    def expire_tokens(self) -> None:
        """Make every token issued so far invalid at once, as if all had expired.

        A new signing key (Keystone's Fernet key rotation without the staged
        key): clients still believe their tokens good for hours, are refused
        with 401 and must authenticate again, which is what keystoneauth does
        once per request. For tests of clients that outlive their tokens.
        """
        key = secrets.token_bytes(32)
        self._store.set_setting("keystone.token_key", _b64(key))
        self._key = key
        LOG.info("every token issued so far is now expired (new signing key)")

    def validate(self, token) -> dict | None:
        """The claims of a valid, unexpired, unrevoked token; else None."""
        if not token or token.count(".") != 1:
            return None
        payload, signature = token.split(".")
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            claims = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            return None
        if claims.get("u") != self.user_id or claims.get("e", 0) <= time.time():
            return None
        if self._store.get("revoked", claims.get("a")) is not None:
            return None
        return claims

    # -- HTTP ----------------------------------------------------------------

    def handle(self, req, subpath) -> Response:
        parts = [p for p in subpath.split("/") if p]
        if not parts and req.method == "GET":
            # Keystone answers its root with 300 Multiple Choices.
            return Response(300, {"versions": {"values": [self._version()]}})
        if parts == ["v3"] and req.method == "GET":
            return Response(200, {"version": self._version()})
        if parts == ["v3", "auth", "tokens"]:
            if req.method == "POST":
                fault = apply_fault(self._faults, "auth.token", keystone_error)
                if fault is not None:
                    return fault
                return self._authenticate(req)
            if req.method in ("GET", "HEAD"):
                return self._check(req, head=req.method == "HEAD")
            if req.method == "DELETE":
                return self._revoke(req)
        if parts == ["v3", "auth", "catalog"] and req.method == "GET":
            if self.validate(req.headers.get("X-Auth-Token")) is None:
                return self.unauthorized()
            return Response(200, {"catalog": self.catalog(), "links": {}})
        if parts in (["v3", "auth", "projects"], ["v3", "users", self.user_id, "projects"]):
            if req.method == "GET":
                if self.validate(req.headers.get("X-Auth-Token")) is None:
                    return self.unauthorized()
                return Response(200, {"projects": [dict(self._project(), enabled=True)]})
        return keystone_error(404, "The resource could not be found.")

    def unauthorized(self) -> Response:
        resp = keystone_error(401, _AUTH_FAILED)
        resp.headers["WWW-Authenticate"] = f'Keystone uri="{self._base_url()}/identity"'
        return resp

    def _authenticate(self, req) -> Response:
        try:
            auth = req.json()["auth"]
            identity = auth["identity"]
            methods = identity["methods"]
            if not isinstance(methods, list) or not methods:
                raise ValueError("methods")
        except (ValueError, KeyError, TypeError):
            return keystone_error(
                400,
                "Expecting to find identity in auth. The server could not comply with "
                "the request since it is either malformed or otherwise incorrect. "
                "The client is assumed to be in error.",
            )

        expires = None
        if "password" in methods:
            if not self._password_ok(identity.get("password")):
                return self.unauthorized()
        elif "token" in methods:
            claims = self.validate((identity.get("token") or {}).get("id"))
            if claims is None:
                return self.unauthorized()
            expires = claims["e"]  # Keystone keeps the original expiry
        else:
            return self.unauthorized()

        scope = auth.get("scope")
        project_id = None
        if scope not in (None, "unscoped"):
            project_id = self._scoped_project(scope)
            if project_id is None:
                return self.unauthorized()

        token, claims = self._issue(project_id, methods, expires)
        LOG.debug("issued token for project %s", project_id)
        return Response(
            201,
            self._token_body(claims),
            {"X-Subject-Token": token, "Vary": "X-Auth-Token"},
        )

    def _password_ok(self, password_block) -> bool:
        try:
            user = password_block["user"]
            password = user["password"]
        except (KeyError, TypeError):
            return False
        if "id" in user:
            if user["id"] != self.user_id:
                return False
        else:
            domain = user.get("domain") or {}
            if user.get("name") != DEFAULT_USERNAME or not self._domain_matches(domain):
                return False
        return isinstance(password, str) and hmac.compare_digest(
            password.encode("utf-8"), self._password.encode("utf-8")
        )

    @staticmethod
    def _domain_matches(domain) -> bool:
        if not isinstance(domain, dict):
            return False
        if "id" in domain:
            return domain["id"] == DEFAULT_DOMAIN_ID
        return domain.get("name") == DEFAULT_DOMAIN_NAME

    def _scoped_project(self, scope):
        project = scope.get("project") if isinstance(scope, dict) else None
        if not isinstance(project, dict):
            return None  # domain and system scope: the user has no roles there
        if "id" in project:
            return self.project_id if project["id"] == self.project_id else None
        if project.get("name") == DEFAULT_PROJECT_NAME and self._domain_matches(
            project.get("domain")
        ):
            return self.project_id
        return None

    def _check(self, req, head) -> Response:
        if self.validate(req.headers.get("X-Auth-Token")) is None:
            return self.unauthorized()
        subject = req.headers.get("X-Subject-Token")
        claims = self.validate(subject)
        if claims is None:
            return keystone_error(404, "Could not recognize Fernet token")
        return Response(
            200, None if head else self._token_body(claims), {"X-Subject-Token": subject}
        )

    def _revoke(self, req) -> Response:
        if self.validate(req.headers.get("X-Auth-Token")) is None:
            return self.unauthorized()
        claims = self.validate(req.headers.get("X-Subject-Token"))
        if claims is None:
            return keystone_error(404, "Could not recognize Fernet token")
        # Only the audit id is kept; tokens are never stored.
        self._store.put("revoked", {"id": claims["a"], "expires": claims["e"]})
        return Response(204)
