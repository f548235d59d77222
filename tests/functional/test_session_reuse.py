"""fuxi-server keeps one authenticated session: many Docker calls, one token.

Issue 6: "Reuse one authenticated session; no repeated catalog or token
fetches per call."  devcloud counts every request it is sent, per
"METHOD /path" (GET /devcloud/requests; DELETE resets), so the test can see
how often fuxi asked Keystone for a token, re-read the catalog or ran
version discovery while Docker called Create/Mount/Unmount/Remove/Get/List
over and over.  devcloud's tokens live an hour (keystone.TOKEN_TTL), far
longer than the test: no renewal is due, so one token per process is all a
reused session may ask for.
"""

import os

import requests

from tests.functional.harness import ok

# Only devcloud counts its requests; the Nova path adds Nova's discovery too.
CLOUD_KINDS = ("devcloud", "devcloud-nova")
ROUNDS = 8  # each: Create, Get, List, Mount, Path, Unmount, Remove (+ a Get of the gone volume)
TOKENS = "POST /identity/v3/auth/tokens"


def counts(cloud) -> dict:
    resp = requests.get(f"{cloud.devcloud['url']}/devcloud/requests", timeout=10)
    resp.raise_for_status()
    return resp.json()["requests"]


def reset(cloud) -> None:
    requests.delete(f"{cloud.devcloud['url']}/devcloud/requests", timeout=10).raise_for_status()


def session_overhead(counted: dict) -> dict:
    """The requests of authentication, catalog and version discovery, not of work.

    Everything under /identity (tokens, token checks, catalog, projects,
    Keystone's own discovery), and GETs of a service's root, its version
    document or its project-scoped root (Cinder's catalog URL ends in the
    project id, so /volume/v3/<project> is discovery too).  A real call has
    a collection after those: /volume/v3/<project>/volumes, /compute/v2.1/servers/...
    """
    roots = {"/volume", "/volume/v3", "/compute", "/compute/v2.1", "/compute/v2", "/share", "/share/v2"}
    overhead = {}
    for key, n in counted.items():
        method, path = key.split(" ", 1)
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["identity"]:
            overhead[key] = n
        elif method in ("GET", "HEAD") and (path in roots or (parts[:2] == ["volume", "v3"] and len(parts) == 3
                                                               and not _is_cinder_collection(parts[2]))):
            overhead[key] = n
    return overhead


def _is_cinder_collection(segment) -> bool:
    return segment in ("volumes", "attachments", "types", "snapshots", "limits", "backups",
                       "extensions", "os-availability-zone", "os-services", "messages", "groups")


def one_round(plugin, name):
    ok(plugin.call("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}}))
    assert ok(plugin.call("VolumeDriver.Get", {"Name": name}))["Volume"]["Name"] == name
    assert name in [v["Name"] for v in ok(plugin.call("VolumeDriver.List", {}))["Volumes"]]
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "c1"}))["Mountpoint"]
    assert os.path.ismount(path)
    assert ok(plugin.call("VolumeDriver.Path", {"Name": name}))["Mountpoint"] == path
    ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "c1"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": name}))
    status, body = plugin.call("VolumeDriver.Get", {"Name": name})
    assert body.get("Err"), (status, body)


def test_the_request_counter_counts(cloud):
    """The counter the next test relies on: one token request is counted once, /devcloud not at all."""
    reset(cloud)
    assert counts(cloud) == {}
    auth = cloud.devcloud["cloud"]["auth"]
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "password": auth["password"], "domain": {"name": auth["user_domain_name"]}}}}}}
    resp = requests.post(f"{auth['auth_url']}/auth/tokens", json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    requests.get(f"{cloud.devcloud['url']}/volume/", timeout=10)
    assert counts(cloud) == {TOKENS: 1, "GET /volume": 1}
    reset(cloud)
    assert counts(cloud) == {}


def test_many_calls_reuse_one_token_and_one_catalog(cloud, plugin_factory, tmp_path):
    reset(cloud)  # nothing of the test's own SDK (it has made no call yet) nor of set-up
    plugin = plugin_factory().start()

    one_round(plugin, "warmup")
    first = counts(cloud)
    assert first.get(TOKENS, 0) >= 1, f"fuxi's calls reached devcloud without a token request? {first}"
    # One process (gunicorn's single worker) does the work: one password auth.
    assert first[TOKENS] == 1, f"more than one token for one round of calls: {session_overhead(first)}"
    work_first = sum(first.values()) - sum(session_overhead(first).values())

    for i in range(ROUNDS):
        one_round(plugin, f"v{i}")
    for _ in range(10):  # Get and List alone: answered locally, and never re-authenticated
        ok(plugin.call("VolumeDriver.List", {}))
        plugin.call("VolumeDriver.Get", {"Name": "v0"})
    after = counts(cloud)

    # The work grew with the calls (the counter sees fuxi) ...
    work_after = sum(after.values()) - sum(session_overhead(after).values())
    assert work_after >= work_first + ROUNDS * 3, (work_first, work_after, after)
    # ... and the session overhead did not: same token, catalog and discovery requests as after round one.
    assert session_overhead(after) == session_overhead(first), (
        f"after 1 round: {session_overhead(first)}\nafter {ROUNDS + 1} rounds: {session_overhead(after)}")
    assert after[TOKENS] == 1
