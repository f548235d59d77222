"""Plumbing shared by every test tier.

* Tiers: tests under tests/unit, tests/functional, tests/e2e (and
  tests/conformance) get the marker of that name, so `-m unit` or
  `-m "not e2e"` pick tiers.
* Strict tiers: with FUXI_REQUIRE_ALL_TIERS=1 or CI=true a skipped test (or a
  module skipped at collection) is reported as a failure.  A tier that cannot
  run on a machine (no dockerd, not root, ...) must not turn a run green.
  Expected failures (xfail) stay what they are.
"""

import os
from pathlib import Path

import pytest

# The suite's gRPC clients (the CSI tests) run subprocesses too: gRPC's fork
# handlers must be off before any test module imports grpc (see fuxi_csi/__init__.py).
import fuxi_csi  # noqa: F401,E402

TESTS_DIR = Path(__file__).resolve().parent
TIERS = ("unit", "functional", "e2e", "conformance", "shares")
STRICT_MESSAGE = "tier skipped but FUXI_REQUIRE_ALL_TIERS/CI requires every tier to run: {reason}"


def strict_tiers() -> bool:
    if os.environ.get("FUXI_REQUIRE_ALL_TIERS", "").strip() == "1":
        return True
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _tier_of(path) -> str | None:
    try:
        rel = Path(str(path)).resolve().relative_to(TESTS_DIR)
    except ValueError:
        return None
    if len(rel.parts) > 1 and rel.parts[0] in TIERS:
        return rel.parts[0]
    return None


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = longrepr[2]
        return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    return str(longrepr)


def _fail_skip(report) -> None:
    report.outcome = "failed"
    report.longrepr = STRICT_MESSAGE.format(reason=_skip_reason(report))


def pytest_configure(config):
    # Also declared in pytest.ini; repeated here so the markers exist whatever
    # ini file pytest picked.
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: tests/{tier} tier")


def pytest_report_header(config):
    if strict_tiers():
        return "fuxi: strict tiers (FUXI_REQUIRE_ALL_TIERS/CI): a skipped test is a failure"
    return "fuxi: skips allowed (set FUXI_REQUIRE_ALL_TIERS=1 to make them failures)"


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = _tier_of(item.path)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and strict_tiers():
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and strict_tiers():
        _fail_skip(report)


# -- the clouds every Cinder-path test runs on -----------------------------

# Tokens this short make keystoneauth re-authenticate during the run (it renews
# a token 120 s before it expires), so expiry is exercised by every test.
REALCLOUD_TOKEN_EXPIRATION = 150


def pytest_generate_tests(metafunc):
    if "cloud_kind" in metafunc.fixturenames:
        from tests.clouds import CLOUD_KINDS, selected_cloud_kinds

        kinds = selected_cloud_kinds()
        if strict_tiers() and set(kinds) != set(CLOUD_KINDS):
            raise pytest.UsageError(
                f"FUXI_CLOUDS={os.environ.get('FUXI_CLOUDS')!r} narrows the clouds, but strict tiers "
                f"(CI / FUXI_REQUIRE_ALL_TIERS) run every one of {', '.join(CLOUD_KINDS)}"
            )
        # A module about some kinds only (e.g. the Nova path) names them.
        wanted = getattr(metafunc.module, "CLOUD_KINDS", CLOUD_KINDS)
        metafunc.parametrize("cloud_kind", [k for k in kinds if k in wanted], scope="session")


@pytest.fixture(scope="session")
def realcloud_stack(glusterfs_server, cephfs_server):
    """Real Keystone + Cinder + Manila, started once for the session (install
    included); Manila's GLUSTERFS and CEPHFS shares live on the session's
    share servers, as devcloud's do."""
    from tests.clouds import REPO, RealCloudStack

    directory = os.environ.get("FUXI_REALCLOUD_DIR", str(REPO / ".realcloud"))
    stack = RealCloudStack(directory, token_expiration=REALCLOUD_TOKEN_EXPIRATION,
                           glusterfs=glusterfs_server, cephfs=cephfs_server)
    try:
        stack.start()
    except Exception:
        stack.stop()  # leave nothing half-started behind
        raise
    yield stack
    stack.stop()


# -- real share servers (tests/share_servers.py) ----------------------------

@pytest.fixture(scope="session")
def glusterfs_server(tmp_path_factory):
    """A real GlusterFS server for the session, its volume root mounted at .root_mount."""
    from tests.share_servers import running_glusterfs

    with running_glusterfs(tmp_path_factory.mktemp("glusterfs")) as server:
        yield server


@pytest.fixture(scope="session")
def cephfs_server(tmp_path_factory):
    """A real one-node Ceph with CephFS for the session, / mounted at .root_mount."""
    from tests.share_servers import running_cephfs

    with running_cephfs(tmp_path_factory.mktemp("cephfs")) as server:
        yield server
