"""devcloud's Keystone emulation, called directly (no HTTP server)."""

import json
from email.message import Message

import pytest

from storage_core.devcloud.faults import FaultInjector
from storage_core.devcloud.keystone import Identity
from storage_core.devcloud.store import Store
from storage_core.devcloud.web import Request

BASE = "http://127.0.0.1:5000"


def _headers(**values):
    msg = Message()
    for name, value in values.items():
        msg[name.replace("_", "-")] = value
    return msg


def _request(method, body=None, **headers):
    raw = json.dumps(body).encode() if body is not None else b""
    return Request(method, "/identity/v3/auth/tokens", {}, _headers(**headers), raw)


def _password(password="devcloud", user=None, scope=None):
    user = user or {"name": "fuxi", "domain": {"name": "Default"}}
    body = {"auth": {"identity": {"methods": ["password"],
                                  "password": {"user": dict(user, password=password)}}}}
    body["auth"]["scope"] = scope if scope is not None else {
        "project": {"name": "fuxi", "domain": {"name": "Default"}}}
    return body


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "db.sqlite")
    yield s
    s.close()


@pytest.fixture
def identity(store):
    return Identity(store, lambda: BASE, FaultInjector())


def _token(identity, body=None):
    resp = identity.handle(_request("POST", body or _password()), "/v3/auth/tokens")
    assert resp.status == 201, resp.body
    return resp.headers["X-Subject-Token"], resp.body["token"]


def test_password_token_has_scope_roles_and_catalog(identity):
    token, body = _token(identity)
    assert identity.validate(token)["p"] == identity.project_id
    assert body["project"]["id"] == identity.project_id
    assert {r["name"] for r in body["roles"]} >= {"admin", "member"}
    assert body["expires_at"].endswith("Z") and body["issued_at"].endswith("Z")
    types = {s["type"]: s for s in body["catalog"]}
    assert types["block-storage"]["endpoints"][0]["url"] == \
        f"{BASE}/volume/v3/{identity.project_id}"
    assert types["volumev3"]["endpoints"][0]["url"] == \
        f"{BASE}/volume/v3/{identity.project_id}"


def test_user_and_project_by_id(identity):
    body = _password(user={"id": identity.user_id},
                     scope={"project": {"id": identity.project_id}})
    _token(identity, body)


@pytest.mark.parametrize("body", [
    _password("wrong"),
    _password(user={"name": "someone", "domain": {"name": "Default"}}),
    _password(user={"name": "fuxi", "domain": {"name": "Other"}}),
    _password(scope={"project": {"name": "other", "domain": {"name": "Default"}}}),
    _password(scope={"domain": {"name": "Default"}}),
])
def test_refusals_are_401_keystone_shaped(identity, body):
    resp = identity.handle(_request("POST", body), "/v3/auth/tokens")
    assert resp.status == 401
    assert resp.body["error"]["code"] == 401
    assert resp.body["error"]["title"] == "Unauthorized"
    assert "X-Subject-Token" not in resp.headers


def test_malformed_body_is_400(identity):
    resp = identity.handle(_request("POST", {"nope": 1}), "/v3/auth/tokens")
    assert resp.status == 400 and resp.body["error"]["code"] == 400


def test_unscoped_token_has_no_catalog(identity):
    token, body = _token(identity, _password(scope="unscoped"))
    assert "catalog" not in body
    assert identity.validate(token)["p"] is None


def test_tokens_survive_a_new_identity_on_the_same_store(store, identity):
    token, _ = _token(identity)
    again = Identity(store, lambda: BASE, FaultInjector())
    assert again.project_id == identity.project_id
    assert again.validate(token) is not None


def test_tampered_or_foreign_tokens_are_invalid(tmp_path, identity):
    token, _ = _token(identity)
    payload, signature = token.split(".")
    assert identity.validate(payload + "." + signature[::-1]) is None
    assert identity.validate("garbage") is None
    assert identity.validate(None) is None
    other = Identity(Store(tmp_path / "other.sqlite"), lambda: BASE, FaultInjector())
    assert other.validate(token) is None


def test_validate_and_revoke_over_the_api(identity):
    token, _ = _token(identity)
    resp = identity.handle(_request("GET", X_Auth_Token=token, X_Subject_Token=token),
                           "/v3/auth/tokens")
    assert resp.status == 200 and resp.headers["X-Subject-Token"] == token
    resp = identity.handle(_request("GET", X_Auth_Token=token, X_Subject_Token="x.y"),
                           "/v3/auth/tokens")
    assert resp.status == 404
    resp = identity.handle(_request("GET", X_Subject_Token=token), "/v3/auth/tokens")
    assert resp.status == 401

    other, _ = _token(identity)
    resp = identity.handle(_request("DELETE", X_Auth_Token=other, X_Subject_Token=token),
                           "/v3/auth/tokens")
    assert resp.status == 204
    assert identity.validate(token) is None
    assert identity.validate(other) is not None


def test_token_method_reauth_keeps_expiry(identity):
    token, body = _token(identity)
    resp = identity.handle(_request("POST", {"auth": {
        "identity": {"methods": ["token"], "token": {"id": token}},
        "scope": {"project": {"id": identity.project_id}}}}), "/v3/auth/tokens")
    assert resp.status == 201
    assert resp.body["token"]["expires_at"] == body["expires_at"]


def test_auth_fault(identity):
    identity._faults.add("auth.token", status=503)
    resp = identity.handle(_request("POST", _password()), "/v3/auth/tokens")
    assert resp.status == 503 and resp.body["error"]["code"] == 503
    _token(identity)
