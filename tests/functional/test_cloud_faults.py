"""Issue 7: cloud faults, on every cloud call in turn.

A real fuxi-server runs on devcloud (bare metal, and through devcloud's Nova)
with a short client timeout. For every operation of devcloud's fault hooks
(storage_core.devcloud.faults.OPERATIONS) that a volume's life reaches, and
every fault kind (HTTP 500, HTTP 503, a connection reset, an answer slower
than the client timeout, a POST slower than even its own timeout, a 401 from
a token that expired early, a volume that goes to ``error``), the fault is
armed once (and, for the main operations, for every call) and the life is run
the way dockerd runs it: Get, Create (retried once, as a user would), Get,
List, Mount (retried once), Path, Unmount, Remove. Every call must either
succeed or answer a non-2xx with a clear ``Err`` (says what failed where, no
traceback, no bare 500; whether it also names the volume is reported at the
end), well inside Docker's deadline (120 s for Create and Mount, 60 s for the
rest). Then, with the fault cleared: nothing half-made (no volume in a
transitional status, at most one volume of the name, no cloud attachment the
journal does not record, no mount or loop device that nothing accounts for),
and the life completes cleanly. On devcloud a Manila share's life (Create,
Get, List, Remove) meets each fault once too.

The operations reached are learnt from devcloud (GET /devcloud/operations)
by a fault-free life first, so a change in which calls fuxi makes changes
the matrix instead of leaving a call untested.

    FUXI_CLOUDS=devcloud,devcloud-nova .venv/bin/python -m pytest tests/functional/test_cloud_faults.py -v
"""

import os
import re
import sqlite3
import time

import pytest

from storage_core.devcloud.faults import OPERATIONS, VOLUME_STATUS_OPERATIONS
from storage_core.devcloud.testing import Control, loop_devices_under
from tests.functional.harness import mounted_under

CLOUD_KINDS = ("devcloud", "devcloud-nova")

# A short client timeout keeps the slow-answer cases fast: an idempotent
# request is tried 1 + RETRIES times of TIMEOUT each, a POST once with
# (1 + RETRIES) * TIMEOUT. One retry, not the default two: the second retry
# waits a second first, which would only make the matrix slower.
TIMEOUT = 1.0
RETRIES = 1  # the default is 2; which requests are retried does not depend on it
POST_TIMEOUT = TIMEOUT * (1 + RETRIES)
PLUGIN_OPTIONS = {
    "cloud_timeout": TIMEOUT,
    "cloud_retries": RETRIES,
    # No background catalog refresh during the test: it would meet the
    # faults armed for a lifecycle at random moments.
    "refresh_interval": 3600,
}

DEADLINES = {"Create": 120.0, "Mount": 120.0}  # Docker's; every other call 60 s
# What each call may take here, where the cloud answers in milliseconds: the
# slowest case is a few tries of TIMEOUT for each of a handful of requests.
PRACTICAL_LIMIT = 45.0

# Requests that are POSTs, tried once with POST_TIMEOUT: "slow" makes them
# slower than TIMEOUT but inside POST_TIMEOUT, "hung" slower than that. (A
# token request is a POST that is tried again like a GET, with TIMEOUT.)
POST_OPERATIONS = {"volume.create", "attachment.create", "attachment.complete",
                   "volume_attachment.create", "share.create", "access.create"}
TRANSITIONAL = {"creating", "deleting", "attaching", "detaching", "reserved", "downloading",
                "extending", "maintenance", "awaiting-transfer", "backing-up", "restoring-backup"}


def slow_delay(operation) -> float:
    # Slower than an idempotent request may take (it is tried again), inside a POST's timeout.
    return TIMEOUT + 0.6


def hung_delay(operation) -> float:
    return (POST_TIMEOUT if operation in POST_OPERATIONS else TIMEOUT) + 0.6


# fault kind -> (the fault's fields for an operation, the operations it applies to)
FAULTS = {
    "http500": (lambda op: {"status": 500}, None),
    "http503": (lambda op: {"status": 503}, None),
    "reset": (lambda op: {"reset_connection": True}, None),
    "slow": (lambda op: {"status": None, "delay": slow_delay(op)}, None),
    # A POST slower than even its own timeout: answered with an error, done late by the cloud.
    "hung": (lambda op: {"status": None, "delay": hung_delay(op)}, POST_OPERATIONS),
    # The token the plugin holds is refused (it expired or was revoked early).
    "expired_token": (lambda op: {"expire_tokens": True}, set(OPERATIONS) - {"auth.token"}),
    "volume_error": (lambda op: {"volume_status": "error"}, set(VOLUME_STATUS_OPERATIONS)),
}
# A 503, a slow answer and a connection reset meet the same retrying HTTP
# session whichever way a volume attaches: the Nova path runs the other kinds
# (its own calls under a 500, a hung POST, an expired token, a volume gone to
# error; a POST cut off after it was sent is a hung one to the session).
ONLY_ON_CLOUD_KINDS = {"fault": {"http503": {"devcloud"}, "slow": {"devcloud"}, "reset": {"devcloud"}}}
# Operations whose fault is also armed for every call, not only the next one.
ALWAYS = {"auth.token", "volume.list", "volume.create", "volume.get", "volume.delete",
          "attachment.create", "attachment.delete", "volume_attachment.create",
          "volume_attachment.delete"}
# ... but not the slow answers of the two that every call makes (a lookup, a
# token): they only make every call slow in the same way, for half the runtime.
NOT_ALWAYS_SLOW = {"auth.token", "volume.list"}
# What a fault-free lifecycle must reach at least (the matrix is built from
# what it does reach).
CORE = {
    "devcloud": {"volume.list", "volume.create", "volume.get", "volume.delete",
                 "attachment.create", "attachment.complete", "attachment.delete"},
    "devcloud-nova": {"volume.list", "volume.create", "volume.get", "volume.delete",
                      "volume_attachment.create", "volume_attachment.delete"},
}

# An Err says where it failed: the service, or the thing it was about.
SAYS_WHERE = ("Cinder", "Nova", "Keystone", "Manila", "volume", "attachment", "share", "mount")

RESULTS = {}  # (cloud kind, fault kind) -> cases tried
UNNAMED = set()  # (call, Err with ids masked) that name neither the volume nor its id


def _shape(err) -> str:
    """The Err with ids and URLs masked, so one kind of message is listed once."""
    err = re.sub(r"https?://\S+", "URL", err)
    err = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", err)
    return re.sub(r"req-ID", "REQ", err)[:200]


class Lifecycle:
    """dockerd's side of one volume's life, with every answer checked."""

    def __init__(self, plugin, cloud, name, log, retry_pause=0.0, opts=None, mounts=True):
        self.plugin = plugin
        self.cloud = cloud
        self.name = name
        self.log = log
        self.opts = opts or {"size": "1"}
        # A share on devcloud's NFS cannot be mounted here (no NFS client):
        # its life is Create, Get, List, Remove.
        self.mounts = mounts
        # How long the user waits before trying a failed Create or Mount again.
        self.retry_pause = retry_pause
        self.ids = set()  # cloud ids this name has had, for "does the Err name the volume"
        self.mounted = False
        self.last_call_end = time.monotonic()

    def call(self, method, body):
        started = time.monotonic()
        status, answer = self.plugin.call(f"VolumeDriver.{method}", body, timeout=DEADLINES.get(method, 60.0) + 30)
        elapsed = time.monotonic() - started
        self.last_call_end = time.monotonic()
        err = answer.get("Err", "")
        self.log.append((self.name, method, status, round(elapsed, 2), err))
        assert elapsed < DEADLINES.get(method, 60.0), (method, elapsed, err)
        assert elapsed < PRACTICAL_LIMIT, (method, elapsed, err)
        if status == 200 and not err:
            return True, answer
        assert status >= 400, f"{method} answered {status} with an Err: {answer}"
        self.check_clear(method, err)
        return False, answer

    def learn_ids(self):
        """The cloud ids this name had, from the plugin's catalog and journal
        (no cloud call: the test's own requests would meet the armed fault)."""
        path = os.path.join(self.plugin.state_dir, "state.sqlite")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            for table in ("known_volumes", "host_volumes"):
                self.ids.update(r[0] for r in db.execute(f"SELECT volume_id FROM {table} WHERE name = ?",
                                                         (self.name,)))
        finally:
            db.close()

    def check_clear(self, method, err):
        """A clear Err: says what failed, in words a user can act on.

        dockerd puts the call and the volume's name in front of it ("create
        v1: VolumeDriver.Create: ..."), so the Err itself must say what went
        wrong where; whether it also names the volume is reported, not required.
        """
        assert isinstance(err, str) and err.strip(), f"{method}: empty Err"
        assert "Traceback" not in err and "File \"" not in err, f"{method}: a traceback: {err}"
        assert "internal error" not in err.lower(), f"{method}: an untranslated exception: {err}"
        assert err.strip() not in ("500 Internal Server Error", "Internal Server Error"), err
        assert len(err) < 2000, f"{method}: an Err of {len(err)} characters"
        assert any(w in err for w in SAYS_WHERE), f"{method}: the Err does not say what failed: {err}"
        if method != "List" and self.name not in err:
            self.learn_ids()
            if not any(i in err for i in self.ids):
                UNNAMED.add((method, _shape(err)))

    # -- dockerd's calls -----------------------------------------------------

    def create(self) -> bool:
        """`docker volume create`: Get, then Create if Get found nothing; once more on failure."""
        for attempt in range(2):
            if attempt:
                time.sleep(self.retry_pause)
            got, _ = self.call("Get", {"Name": self.name})
            if got:
                return True
            made, _ = self.call("Create", {"Name": self.name, "Opts": self.opts})
            if made:
                return True
        return False

    def mount(self, caller="c1") -> bool:
        for attempt in range(2):
            if attempt:
                time.sleep(self.retry_pause)
            done, answer = self.call("Mount", {"Name": self.name, "ID": caller})
            if done:
                assert os.path.ismount(answer["Mountpoint"]), answer
                self.mounted = True
                return True
        return False

    def unmount(self, caller="c1") -> bool:
        done, _ = self.call("Unmount", {"Name": self.name, "ID": caller})
        if done:
            self.mounted = False
        return done

    def remove(self) -> bool:
        done, _ = self.call("Remove", {"Name": self.name})
        return done

    def run(self, before_each=None) -> None:
        """The whole life once, going as far as the cloud lets it.

        before_each runs before Create, Mount and Remove (the token's expiry
        for the auth.token cases)."""
        step = before_each or (lambda: None)
        step()
        if not self.create():
            return
        self.call("Get", {"Name": self.name})
        self.call("List", {})
        step()
        if self.mounts and self.mount():
            self.call("Path", {"Name": self.name})
            if not self.unmount():
                return
        step()
        self.remove()

    def finish(self) -> None:
        """After the fault is cleared: the rest of the life must go cleanly."""
        if self.mounted:
            assert self.unmount(), f"{self.name}: Unmount after the fault failed: {self.log[-1]}"
        got, _ = self.call("Get", {"Name": self.name})
        if not got:
            assert self.create(), f"{self.name}: Create after the fault failed: {self.log[-1]}"
        if not self.mounts:
            assert self.remove(), f"{self.name}: Remove after the fault failed: {self.log[-1]}"
            gone, answer = self.call("Get", {"Name": self.name})
            assert not gone, answer
            return
        done, answer = self.call("Mount", {"Name": self.name, "ID": "c1"})
        if done:
            assert os.path.ismount(answer["Mountpoint"]), answer
            self.mounted = True
        else:
            if "does not exist" in answer["Err"]:
                # Get answered from the catalog, but a Remove whose answer was
                # lost did delete it (Mount found out and said so): create it anew.
                assert self.create(), f"{self.name}: Create after the fault failed: {self.log[-1]}"
            assert self.mount(), f"{self.name}: Mount after the fault failed: {self.log[-1]}"
        assert self.unmount(), f"{self.name}: Unmount after the fault failed: {self.log[-1]}"
        assert self.remove(), f"{self.name}: Remove after the fault failed: {self.log[-1]}"
        gone, answer = self.call("Get", {"Name": self.name})
        assert not gone, answer


# -- what must hold once the fault is cleared -----------------------------------

def journal(plugin) -> list[dict]:
    path = os.path.join(plugin.state_dir, "state.sqlite")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT name, volume_id, attachment_id, mountpoint, phase "
                                            "FROM host_volumes")]
    finally:
        db.close()


def settle(cloud, timeout=20.0) -> list:
    """The cloud's volumes once none is in a transitional status (background work done)."""
    deadline = time.monotonic() + timeout
    while True:
        volumes = list(cloud.sdk.block_storage.volumes(details=True))
        busy = [(v.name, v.status) for v in volumes if v.status in TRANSITIONAL]
        if not busy:
            return volumes
        if time.monotonic() > deadline:
            raise AssertionError(f"volumes left in a transitional status: {busy}")
        time.sleep(0.05)


def check_nothing_half_made(cloud, plugin, name) -> None:
    volumes = settle(cloud)
    named = [v for v in volumes if v.name == name]
    assert len(named) <= 1, f"{len(named)} volumes named {name}: {[(v.id, v.status) for v in named]}"
    rows = journal(plugin)
    journaled = {r["volume_id"] for r in rows}
    for vol in volumes:
        for att in cloud.attachments_of(vol.id):
            assert vol.id in journaled, (
                f"volume {vol.name} ({vol.id}) has cloud attachment {att.id} that this host's "
                f"journal does not record: {rows}")
    mounted_rows = {r["mountpoint"] for r in rows if r["phase"] == "mounted"}
    for point in mounted_under(plugin.workdir):
        assert point in mounted_rows, f"{point} is mounted but no journal record says so: {rows}"
    attached_ids = {vol.id for vol in volumes if cloud.attachments_of(vol.id)}
    for device, backing in loop_devices_under(cloud.root).items():
        owner = os.path.basename(backing).removesuffix(".img")
        assert owner in attached_ids, f"loop device {device} ({backing}) is bound but its volume has no attachment"


def admin_mends(cloud, plugin, name, log) -> bool:
    """What an operator does for a volume a failed attach left in ``error``
    while attached (Nova refuses to detach it, so fuxi cannot): reset its
    status to in-use. Only after fuxi said what happened and kept the record."""
    stuck = [v for v in cloud.volumes_named(name) if v.status == "error" and cloud.attachments_of(v.id)]
    for vol in stuck:
        errs = [e[4] for e in log if e[0] == name and e[4]]
        assert any("'error'" in err for err in errs), f"no Err said that {name} went to error: {errs}"
        assert vol.id in {r["volume_id"] for r in journal(plugin)}, f"{name}: attached but not journaled"
        resp = cloud.sdk.block_storage.post(f"/volumes/{vol.id}/action",
                                            json={"os-reset_status": {"status": "in-use"}})
        assert resp.status_code == 202, resp.text
    return bool(stuck)


def check_clean(cloud, plugin, name) -> None:
    volumes = settle(cloud)
    assert [v for v in volumes if v.name == name] == [], f"{name} is still in the cloud"
    assert not any(cloud.attachments_of(v.id) for v in volumes), "attachments left"
    assert [r for r in journal(plugin) if r["name"] == name] == [], "journal records left"
    assert mounted_under(plugin.workdir) == [], "mounts left"
    # A loop device detached while some process (blkid, losetup -a ...) has
    # it open goes when that process closes it: give that a moment.
    left = {}
    for _ in range(50):
        left = loop_devices_under(cloud.root)
        if not left:
            break
        time.sleep(0.05)
    assert left == {}, "loop devices left"


# -- the matrix ---------------------------------------------------------------------

def reached_operations(plugin, cloud, control, log) -> set:
    """The operations a fault-free lifecycle reaches, by devcloud's count."""
    control.clear_operations()
    life = Lifecycle(plugin, cloud, "probe", log)
    life.run()
    print("\nprobe:", [(e[1], e[3]) for e in log])
    # The only error of a fault-free life: dockerd's Get before the Create.
    assert [e[1] for e in log if e[4]] == ["Get"] and log[0][1] == "Get", log
    log.clear()
    check_clean(cloud, plugin, "probe")
    control.expire_tokens()  # the token request, too (every lifecycle may meet one)
    Lifecycle(plugin, cloud, "probe", log).call("Get", {"Name": "probe"})
    reached = set(control.operations())
    if "volume_attachment.create" in reached:
        # Nova completes the Cinder attachment itself, inside the cloud.
        reached.add("attachment.complete")
    return reached


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_cloud_call_fails_cleanly(fault, cloud, cloud_kind, plugin_factory):
    plugin = plugin_factory(options=PLUGIN_OPTIONS).start()
    control = Control(cloud.devcloud["url"])
    log = []
    try:
        reached = reached_operations(plugin, cloud, control, log)
        assert CORE[cloud_kind] <= reached, f"the lifecycle no longer reaches {CORE[cloud_kind] - reached}"
        assert reached <= set(OPERATIONS)
        fields_for, applies_to = FAULTS[fault]
        operations = sorted(op for op in reached if applies_to is None or op in applies_to)
        assert operations, f"no operation the lifecycle reaches takes a {fault} fault"
        cases = [(op, 1) for op in operations] + [
            (op, None) for op in operations
            if op in ALWAYS and fault not in ("hung", "volume_error")
            and not (fault == "slow" and op in NOT_ALWAYS_SLOW)]
        started = time.monotonic()
        mended, durations = [], []
        for n, (operation, times) in enumerate(cases):
            name = f"v{n}-{operation.replace('.', '-').replace('_', '-')}-{'once' if times else 'always'}"
            fields = fields_for(operation)
            # After a request the cloud still carries out after the Err (it
            # lands delay - POST_TIMEOUT later), the user tries again once it
            # has; test_a_create_retried_while_the_lost_one_is_pending is one
            # who does not wait.
            pause = fields["delay"] - POST_TIMEOUT + 0.3 if fault == "hung" else 0.0
            life = Lifecycle(plugin, cloud, name, log, retry_pause=pause)
            case_started = time.monotonic()
            control.add_fault(operation, times=times, **fields)
            # The token request is reached only when the token is no longer good.
            life.run(before_each=control.expire_tokens if operation == "auth.token" else None)
            control.clear_faults()
            if fields.get("delay"):
                # A slow request still in flight would act after the check: the
                # last one given up on was sent TIMEOUT or more before its call ended.
                time.sleep(max(0.0, life.last_call_end + fields["delay"] - TIMEOUT + 0.3 - time.monotonic()))
            try:
                check_nothing_half_made(cloud, plugin, name)
                if admin_mends(cloud, plugin, name, log):
                    mended.append(name)
                life.finish()
                check_clean(cloud, plugin, name)
            except AssertionError as exc:
                raise AssertionError(
                    f"case {operation} {fault} {'once' if times else 'always'}: {exc}\n"
                    + "\n".join(map(str, [e for e in log if e[0] == name]))
                    + f"\n--- fuxi-server log ---\n{plugin.log(6000)}"
                ) from None
            durations.append((round(time.monotonic() - case_started, 1), name))
        print(f"\n{cloud_kind} {fault}: {len(cases)} cases in {time.monotonic() - started:.1f} s "
              f"over {', '.join(operations)}")
        print(f"  slowest cases: {sorted(durations, reverse=True)[:4]}")
        if mended:
            print(f"  an operator had to reset the status of: {', '.join(mended)}")
        failed_calls = [e for e in log if e[4] and "does not exist" not in e[4]]
        print(f"  {len(log)} Docker calls, {len(failed_calls)} answered an error; slowest "
              f"{max(e[3] for e in log):.2f} s")
        for entry in failed_calls:
            print("   ", entry)
        count = len(cases)
        if cloud_kind == "devcloud" and fault != "volume_error":
            count += share_cases(plugin, cloud, control, log, fault)
        RESULTS[(cloud_kind, fault)] = count
    finally:
        control.close()


SHARE_OPTS = {"backend": "manila", "proto": "nfs", "size": "1"}
SHARE_TRANSITIONAL = {"creating", "deleting", "extending", "shrinking", "migrating", "manage_starting",
                      "unmanage_starting"}


def settle_shares(cloud, timeout=20.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        shares = list(cloud.sdk.shared_file_system.shares(details=True))
        busy = [(s.name, s.status) for s in shares if s.status in SHARE_TRANSITIONAL]
        if not busy:
            return shares
        if time.monotonic() > deadline:
            raise AssertionError(f"shares left in a transitional status: {busy}")
        time.sleep(0.05)


def share_cases(plugin, cloud, control, log, fault) -> int:
    """The same for a Manila share: Create, Get, List, Remove (devcloud's NFS
    shares cannot be mounted on this host), each fault once. Run on one cloud
    kind: a share's life does not depend on how volumes attach."""
    control.clear_operations()
    log_start = len(log)
    probe = Lifecycle(plugin, cloud, "share-probe", log, opts=SHARE_OPTS, mounts=False)
    probe.run()
    assert [e[1] for e in log[log_start:] if e[4]] == ["Get"], log[log_start:]
    assert cloud.shares_named("share-probe") == []
    reached = {op for op in control.operations() if op.startswith(("share.", "access.", "export_locations."))}
    assert {"share.create", "share.list", "share.delete"} <= reached, reached
    fields_for, applies_to = FAULTS[fault]
    operations = sorted(op for op in reached if applies_to is None or op in applies_to)
    for n, operation in enumerate(operations):
        name = f"s{n}-{operation.replace('.', '-').replace('_', '-')}"
        fields = fields_for(operation)
        pause = fields["delay"] - POST_TIMEOUT + 0.3 if fault == "hung" else 0.0
        life = Lifecycle(plugin, cloud, name, log, retry_pause=pause, opts=SHARE_OPTS, mounts=False)
        control.add_fault(operation, times=1, **fields)
        life.run()
        control.clear_faults()
        if fields.get("delay"):
            time.sleep(max(0.0, life.last_call_end + fields["delay"] - TIMEOUT + 0.3 - time.monotonic()))
        try:
            named = [s for s in settle_shares(cloud) if s.name == name]
            assert len(named) <= 1, f"{len(named)} shares named {name}"
            life.finish()
            assert [s for s in settle_shares(cloud) if s.name == name] == [], f"{name} is still in Manila"
        except AssertionError as exc:
            raise AssertionError(f"case {operation} {fault} once (a share): {exc}\n"
                                 + "\n".join(map(str, [e for e in log if e[0] == name]))
                                 + f"\n--- fuxi-server log ---\n{plugin.log(6000)}") from None
    print(f"  and a share: {len(operations)} cases over {', '.join(operations)}")
    return len(operations)


def test_a_create_retried_while_the_lost_one_is_pending(cloud, plugin_factory):
    plugin = plugin_factory(options=PLUGIN_OPTIONS).start()
    control = Control(cloud.devcloud["url"])
    log = []
    try:
        delay = hung_delay("volume.create")
        control.add_fault("volume.create", status=None, delay=delay)
        life = Lifecycle(plugin, cloud, "eager", log)
        assert life.create(), log  # the second try, at once, makes one
        time.sleep(delay + 0.3)  # the lost one lands
        assert len(cloud.volumes_named("eager")) == 1, [(v.id, v.status) for v in cloud.volumes_named("eager")]
    finally:
        control.clear_faults()
        time.sleep(0.5)
        for vol in cloud.volumes_named("eager"):
            cloud.sdk.block_storage.delete_volume(vol.id, ignore_missing=True)
        control.close()


@pytest.fixture(scope="module", autouse=True)
def report_case_count(request):
    yield
    if RESULTS:
        total = sum(RESULTS.values())
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        line = (f"cloud faults: {total} (operation, fault) cases over "
                f"{len({k for k, _ in RESULTS})} cloud kind(s) and {len({f for _, f in RESULTS})} fault kinds")
        lines = [line] + [f"  Err without the volume's name or id: {call}: {shape}"
                          for call, shape in sorted(UNNAMED)]
        for text in lines:
            if reporter is not None:
                reporter.write_line(text)
            else:
                print(text)
