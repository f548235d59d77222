"""The warm pool on the in-memory fakes: fill by tier, claim, recover, drain."""

import threading
import time

import pytest

from storage_core.errors import CloudError, ConfigError, FilesystemError, InvalidInput
from storage_core.fakes import fake_volume_service
from storage_core.host import HostIdentity
from storage_core.models import POOL_KEY
from storage_core.pool.claims import CLAIMED_FROM_KEY
from storage_core.pool.ledger import CLAIMED
from storage_core.pool.spec import NAME_PREFIX, POOL_KEYS, POOL_STATE_KEY, PoolSpec


def pool(tier, **kw):
    return PoolSpec(name=f"t{tier}", size_gb=1, fstype="ext4", tier=tier, **kw)


def made(fakes, tier):
    fakes = fake_volume_service(fakes, pools=[pool(tier)])
    return fakes, fakes.service.pools


def pool_volumes(cinder):
    return [v for v in cinder.volumes.values() if POOL_KEY in v.metadata]


def creates(cinder):
    return [c for c in cinder.calls if c[0] == "create"]


@pytest.mark.parametrize("tier", [1, 2, 3, 4])
def test_fill_then_claim_by_tier(tmp_path, tier):
    fakes, keeper = made(str(tmp_path), tier)
    assert len(keeper.fill("t%d" % tier, 2)) == 2
    assert keeper.status()[0]["ready"] == 2
    vols = pool_volumes(fakes.cinder)
    assert len(vols) == 2 and all(v.name.startswith(NAME_PREFIX) for v in vols)
    assert all(v.metadata[POOL_STATE_KEY] == "ready" for v in vols)
    # Attached here only from tier 3 on; formatted from tier 2 on.
    assert sum(v.status == "in-use" for v in vols) == (2 if tier >= 3 else 0)
    assert len(fakes.filesystems.mkfs_calls) == (2 if tier >= 2 else 0)
    assert len(fakes.filesystems.mounted) == (2 if tier == 4 else 0)
    assert fakes.service.list() == []  # pool volumes are nobody's yet

    fakes.cinder.calls.clear()
    vol = fakes.service.create("data", {"size": "1"})
    assert creates(fakes.cinder) == []  # claimed, not created
    # Renamed and untagged in one call: nothing in between for a crash to leave.
    assert [c for c in fakes.cinder.calls if c[0] in ("rename", "update_metadata", "rename_and_replace_metadata")
            ] == [("rename_and_replace_metadata", vol.id, "data")]
    # The pool it came from stays recorded, in the same call.
    assert fakes.cinder.volumes[vol.id].metadata == {"volume_from": "fuxi", "fstype": "ext4",
                                                     CLAIMED_FROM_KEY: f"t{tier}"}
    assert vol.name == "data" and POOL_KEY not in fakes.cinder.volumes[vol.id].metadata
    assert keeper.status()[0]["ready"] == 1
    assert [i.name for i in fakes.service.list()] == ["data"]

    attaches = sum(c[0] == "create_attachment" for c in fakes.cinder.calls)
    path = fakes.service.mount("data", "c1")
    assert fakes.filesystems.is_mounted(path)
    new_attaches = sum(c[0] == "create_attachment" for c in fakes.cinder.calls) - attaches
    assert new_attaches == (0 if tier >= 3 else 1)  # tier 3/4: Create left it attached and mounted
    assert len(fakes.filesystems.mkfs_calls) == (2 if tier >= 2 else 1)  # never formatted twice
    fakes.service.unmount("data", "c1")
    assert fakes.cinder.volumes[vol.id].status == "available" and not fakes.filesystems.is_mounted(path)


def test_a_spec_no_pool_serves_and_an_empty_pool_take_the_cold_path(tmp_path):
    fakes, keeper = made(str(tmp_path), 4)
    fakes.service.create("big", {"size": "2"})
    fakes.service.create("xfs", {"fstype": "xfs"})
    fakes.service.create("empty", {})  # the pool serves it, but nothing is ready
    assert [c[1] for c in creates(fakes.cinder)] == ["big", "xfs", "empty"]


def test_two_hosts_never_get_the_same_shared_volume(tmp_path):
    a = fake_volume_service(str(tmp_path / "a"), pools=[pool(1)], host=HostIdentity("host-a", "192.0.2.1"))
    b = fake_volume_service(str(tmp_path / "b"), pools=[pool(1)], cinder=a.cinder,
                            host=HostIdentity("host-b", "192.0.2.2"))
    a.service.pools.fill("t1", 1)
    [pooled] = pool_volumes(a.cinder)
    stale = list(a.cinder.list_tagged(POOL_KEY))
    # Both hosts saw the one ready volume before either claimed it.
    b.cinder.list_tagged = lambda key, value=None: stale
    barrier = threading.Barrier(2)
    results = {}

    def claim(fakes, name):
        barrier.wait()
        results[name] = fakes.service.create(name, {}).id

    threads = [threading.Thread(target=claim, args=(f, n)) for f, n in ((a, "va"), (b, "vb"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["va", "vb"] and results["va"] != results["vb"]
    assert pooled.id in results.values()
    assert {a.cinder.volumes[i].name for i in results.values()} == {"va", "vb"}


def test_a_stale_candidate_claimed_elsewhere_is_left_alone(tmp_path):
    a = fake_volume_service(str(tmp_path / "a"), pools=[pool(2)])
    a.service.pools.fill("t2", 1)
    stale = list(a.cinder.list_tagged(POOL_KEY))
    a.service.create("first", {})  # claims it, releases its reservation: available again
    a.cinder.list_tagged = lambda key, value=None: stale
    second = a.service.create("second", {})
    assert a.cinder.volumes[stale[0].id].name == "first" and second.id != stale[0].id


def test_refill_keeps_min_ready_in_batches(tmp_path):
    fakes = fake_volume_service(str(tmp_path), pools=[pool(4, min_ready=3, max_volumes=4, batch=2)])
    keeper = fakes.service.pools
    keeper.refill()
    assert keeper.levels(keeper.pools[0])["ready"] == 2
    keeper.refill()
    assert keeper.levels(keeper.pools[0])["ready"] == 3
    keeper.refill()
    assert keeper.levels(keeper.pools[0])["ready"] == 3
    assert keeper.fill() and keeper.levels(keeper.pools[0])["ready"] == 4  # on demand: up to max
    assert keeper.fill() == []


def test_recovery_undoes_half_fills_and_finishes_half_claims(tmp_path):
    fakes, keeper = made(str(tmp_path), 4)
    keeper.fill("t4", 3)
    ledger = keeper._ledger
    rows = ledger.all()
    # A fill that stopped half-way, a claim that stopped before renaming, one after.
    ledger.save(rows[0].__class__(**{**rows[0].__dict__, "phase": "filling"}))
    ledger.save(rows[1].__class__(**{**rows[1].__dict__, "phase": CLAIMED}))
    ledger.save(rows[2].__class__(**{**rows[2].__dict__, "phase": CLAIMED}))
    fakes.cinder.rename(rows[2].volume_id, "users-vol")
    keeper.recover()
    assert rows[0].volume_id not in fakes.cinder.volumes  # undone and deleted
    assert [pv.phase for pv in ledger.all()] == ["ready"]  # back in the pool
    users = fakes.cinder.volumes[rows[2].volume_id]
    assert users.name == "users-vol" and POOL_KEY not in users.metadata and users.status == "available"
    assert not fakes.filesystems.is_mounted(rows[2].staging)


def test_recovery_untags_a_renamed_shared_volume(tmp_path):
    fakes, keeper = made(str(tmp_path), 1)
    keeper.fill("t1", 1)
    [vol] = pool_volumes(fakes.cinder)
    fakes.cinder.rename(vol.id, "someones")  # a claim on some host stopped here
    keeper.recover()
    assert POOL_KEY not in fakes.cinder.volumes[vol.id].metadata
    assert [i.name for i in fakes.service.list()] == ["someones"]


def test_drain_deletes_this_hosts_idle_volumes_only(tmp_path):
    a = fake_volume_service(str(tmp_path / "a"), pools=[pool(1)], host=HostIdentity("host-a", "192.0.2.1"))
    b = fake_volume_service(str(tmp_path / "b"), pools=[pool(1)], cinder=a.cinder,
                            host=HostIdentity("host-b", "192.0.2.2"))
    a.service.pools.fill("t1", 2)
    b.service.pools.fill("t1", 1)
    assert len(a.service.pools.drain()) == 2
    assert [v.metadata["fuxi_pool_host"] for v in pool_volumes(a.cinder)] == ["host-b"]
    t4 = fake_volume_service(str(tmp_path / "c"), pools=[pool(4)])
    t4.service.pools.fill("t4", 2)
    assert len(t4.service.pools.drain("t4")) == 2
    assert t4.cinder.volumes == {} and t4.filesystems.mounted == {}


def test_a_failed_fill_leaves_nothing(tmp_path):
    fakes, keeper = made(str(tmp_path), 4)
    fakes.filesystems.fail_mount = True
    with pytest.raises(Exception, match="fake mount"):
        keeper.fill("t4", 1)
    assert fakes.cinder.volumes == {} and keeper._ledger.all() == []


def test_bad_pool_settings_and_names_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="tier = 5"):
        pool(5)
    with pytest.raises(ConfigError, match="min_ready = 3 and max = 2"):
        pool(4, min_ready=3, max_volumes=2)
    fakes, keeper = made(str(tmp_path), 4)
    with pytest.raises(InvalidInput, match="no pool named 'nope'; pools: t4"):
        keeper.fill("nope")


def test_a_drain_rests_the_refill_until_the_next_fill(tmp_path):
    fakes = fake_volume_service(str(tmp_path), pools=[pool(4, min_ready=1, max_volumes=2)])
    keeper = fakes.service.pools
    keeper.refill()
    keeper.drain()
    keeper.refill()
    assert keeper.levels(keeper.pools[0])["ready"] == 0
    keeper.fill("t4", 1)
    keeper.refill()
    assert keeper.levels(keeper.pools[0])["ready"] == 1


# -- the claim's one call, when Cinder fails half-way through it ----------------

def fail_after_the_metadata(cinder):
    """Cinder writes a volume update's metadata, then its name: fail in between."""
    def half_done(volume_id, name, metadata):
        cinder.volumes[volume_id] = cinder.volumes[volume_id].__class__(
            **{**cinder.volumes[volume_id].__dict__, "metadata": dict(metadata)})
        raise CloudError("Cinder failed: HTTP 500")
    cinder.rename_and_replace_metadata = half_done


@pytest.mark.parametrize("tier", [1, 4])
def test_a_claim_cinder_failed_half_way_puts_the_pool_tags_back(tmp_path, tier):
    fakes, keeper = made(str(tmp_path), tier)
    keeper.fill(f"t{tier}", 1)
    [pooled] = pool_volumes(fakes.cinder)
    tags = dict(pooled.metadata)
    real = fakes.cinder.rename_and_replace_metadata
    fail_after_the_metadata(fakes.cinder)
    with pytest.raises(CloudError, match="HTTP 500"):
        fakes.service.create("data", {})
    vol = fakes.cinder.volumes[pooled.id]
    assert vol.name == pooled.name and vol.metadata == tags  # a pool volume still, not a user's
    assert fakes.service.list() == [] and fakes.cinder.find("data") is None
    if tier == 4:
        keeper.recover()  # the claim's ledger row goes back to ready
    assert keeper.status()[0]["ready"] == 1
    fakes.cinder.rename_and_replace_metadata = real
    assert fakes.service.create("data", {}).id == pooled.id


def test_recovery_retags_a_pool_volume_whose_claim_lost_its_tags_only(tmp_path):
    fakes, keeper = made(str(tmp_path), 4)
    keeper.fill("t4", 1)
    [row] = keeper._ledger.all()
    keeper._ledger.save(row.__class__(**{**row.__dict__, "phase": CLAIMED}))
    # Cinder dropped the tags, then failed before the name, and fuxi died before it retagged.
    fakes.cinder.update_metadata(row.volume_id, {}, list(POOL_KEYS))
    keeper.recover()
    assert [pv.phase for pv in keeper._ledger.all()] == ["ready"]
    assert fakes.cinder.volumes[row.volume_id].metadata[POOL_KEY] == keeper.pools[0].key
    assert fakes.service.list() == []



@pytest.mark.parametrize("tier", [1, 4])
def test_recovery_deletes_a_volume_a_stopped_fill_left_creating(tmp_path, tier):
    fakes, keeper = made(str(tmp_path), tier)
    # The process died while Cinder was still making it: in the cloud, not on record.
    vol = fakes.cinder.add_volume(NAME_PREFIX + "lost", status="creating")
    fakes.cinder.volumes[vol.id] = vol.__class__(**{**vol.__dict__, "metadata": {
        **vol.metadata, POOL_KEY: keeper.pools[0].key, POOL_STATE_KEY: "filling", "fuxi_pool_host": "host-a"}})
    keeper.recover()
    assert ("wait_for_status", vol.id, "available") in fakes.cinder.calls
    assert fakes.cinder.volumes == {}

# -- filling side by side ---------------------------------------------------------

def slow_creates(cinder, seconds, fail_on=()):
    """Creates that take `seconds`; counts how many ran at once; the n-th (1-based) in fail_on fails."""
    create = cinder.create
    seen = {"now": 0, "most": 0, "started": 0}
    lock = threading.Lock()

    def slow(spec):
        with lock:
            seen["started"] += 1
            number = seen["started"]
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        try:
            time.sleep(seconds)
            if number in fail_on:
                raise CloudError(f"create {number} failed")
            return create(spec)
        finally:
            with lock:
                seen["now"] -= 1

    cinder.create = slow
    return seen


@pytest.mark.parametrize("tier", [1, 4])
def test_a_fill_round_makes_batch_volumes_at_once(tmp_path, tier):
    fakes = fake_volume_service(str(tmp_path), pools=[pool(tier, min_ready=3, max_volumes=5, batch=3)])
    keeper = fakes.service.pools
    seen = slow_creates(fakes.cinder, 0.3)
    keeper.refill()  # one round: min(missing 3, batch 3)
    assert keeper.status()[0]["batch"] == 3  # for `fuxi pool fill`, which asks a round at a time
    assert seen["most"] == 3 and keeper.levels(keeper.pools[0]) == {"ready": 3, "filling": 0}
    progress = []
    assert len(keeper.fill(progress=lambda name, n: progress.append((name, n)))) == 2  # up to max
    assert progress == [(f"t{tier}", 2)] and len(pool_volumes(fakes.cinder)) == 5
    assert len({v.name for v in pool_volumes(fakes.cinder)}) == 5


def test_fills_side_by_side_never_pass_max(tmp_path):
    fakes = fake_volume_service(str(tmp_path), pools=[pool(4, min_ready=2, max_volumes=5, batch=2)])
    keeper = fakes.service.pools
    slow_creates(fakes.cinder, 0.05)
    errors = []

    def run(fn):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in (keeper.fill, keeper.fill, keeper.refill,
                                                                     lambda: keeper.fill("t4", 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(creates(fakes.cinder)) == 5 and len(pool_volumes(fakes.cinder)) == 5
    assert [pv.phase for pv in keeper._ledger.all()] == ["ready"] * 5


def test_one_failure_in_a_round_keeps_the_others(tmp_path):
    fakes = fake_volume_service(str(tmp_path), pools=[pool(4, min_ready=0, max_volumes=4, batch=3)])
    keeper = fakes.service.pools
    slow_creates(fakes.cinder, 0.05, fail_on=(2,))
    with pytest.raises(CloudError, match="create 2 failed"):
        keeper.fill()
    # The round's other two are ready and on record; the failed one left nothing; no next round.
    assert [pv.phase for pv in keeper._ledger.all()] == ["ready", "ready"]
    assert len(pool_volumes(fakes.cinder)) == 2 and len(fakes.filesystems.mounted) == 2
    # A volume that fails after its create is undone, its round-mates kept.
    create, mount = fakes.cinder.create, fakes.filesystems.mount
    failing = {}

    def create_and_pick(spec):
        vol = create(spec)
        failing.setdefault("device", f"/dev/fake-{vol.id[:8]}")  # the first of the round
        return vol

    def mount_or_fail(device, mountpoint, fstype):
        if device == failing["device"]:
            raise FilesystemError("fake mount failed")
        mount(device, mountpoint, fstype)

    fakes.cinder.create, fakes.filesystems.mount = create_and_pick, mount_or_fail
    with pytest.raises(FilesystemError, match="fake mount failed"):
        keeper.fill()
    assert [pv.phase for pv in keeper._ledger.all()] == ["ready"] * 3
    assert len(pool_volumes(fakes.cinder)) == 3 and len(fakes.filesystems.mounted) == 3


def test_stop_lets_the_round_under_way_finish_and_starts_no_other(tmp_path):
    fakes = fake_volume_service(str(tmp_path), pools=[pool(4, min_ready=0, max_volumes=6, batch=2)])
    keeper = fakes.service.pools
    seen = slow_creates(fakes.cinder, 0.3)
    made_ = []
    filler = threading.Thread(target=lambda: made_.extend(keeper.fill()))
    filler.start()
    while seen["started"] < 2:
        time.sleep(0.01)
    keeper.stop()
    filler.join(5)
    assert not filler.is_alive() and len(made_) == 2
    assert [pv.phase for pv in keeper._ledger.all()] == ["ready", "ready"]


def test_a_drain_waits_for_the_round_under_way(tmp_path):
    fakes = fake_volume_service(str(tmp_path), pools=[pool(4, min_ready=0, max_volumes=2, batch=2)])
    keeper = fakes.service.pools
    seen = slow_creates(fakes.cinder, 0.3)
    filler = threading.Thread(target=keeper.fill)
    filler.start()
    while seen["started"] < 2:
        time.sleep(0.01)
    assert len(keeper.drain()) == 2  # both, once made: none pulled from under its fill
    filler.join(5)
    assert fakes.cinder.volumes == {} and keeper._ledger.all() == [] and fakes.filesystems.mounted == {}
