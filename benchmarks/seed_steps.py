"""Where the time of a new volume goes, step by step, under the seed's latencies,
cold and from a warm tier-4 pool.

Starts `fuxi-server` with devcloud's `seed` latency profile (the original fuxi's
measured cloud step times) twice:

1. cold: no pool; Create + Mount of --runs new volumes (1 GiB, ext4);
2. warm: a tier-4 pool of --runs volumes (created, formatted, attached and
   mounted in a staging dir by fuxi's own keeper before the clock starts);
   Create claims one, Mount only counts.

Per step it reads fuxi's own timing lines (`step NAME volume=V took S s`,
logger storage_core.timing) from the server's log and prints the medians next
to the seed talk's published figures (REFERENCE.md, "Latency figures"), then

  P2 = cold Create+Mount wall time / latency devcloud injected into those calls
       (goal <= 1.05): what fuxi adds on top of the cloud;
  P3 = cold / warm Create+Mount wall time (goal >= 20x),

and writes a PNG of stacked per-step bars (seed, cold, warm).

    python benchmarks/seed_steps.py [--runs 5] [--png PATH]
"""

import argparse
import os
import sys
import time

from fuxi_bench import (BenchError, Fuxi, exit_on_signals, median, parse_steps, results_dir, running,
                        scratch, steps_by_name, table)

POOL = "warm"
# REFERENCE.md, "Latency figures": the seed talk's original fuxi, per docker run.
SEED = {
    "create_volume": (1.5, 1.5),
    "reserve": (0.2, 0.2),
    "initialize_connection": (0.6, 1.0),
    "connect_volume": (1.6, 2.7),
    "attach": (0.7, 0.7),
    "mount": (1.0, 1.7),
}
SEED_TOTAL = 8.3
COLD_STEPS = ("create", "attach", "mkfs", "mount")


def say(text):
    print(text, file=sys.stderr, flush=True)


def seed_range(*keys):
    lo = sum(SEED[k][0] for k in keys)
    hi = sum(SEED[k][1] for k in keys)
    return f"{lo:.1f}" if lo == hi else f"{lo:.1f}-{hi:.1f}"


def run_cold(runs, log_copy):
    with scratch("fuxi-seed-cold-") as workdir:
        fuxi = Fuxi(workdir, {"devcloud_latency_profile": "seed"})
        with running(fuxi, log_copy):
            injected = fuxi.devcloud_latency()
            names, create, mount = [], [], []
            for i in range(runs):
                name = f"cold{i}"
                names.append(name)
                create.append(fuxi.timed("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}}))
                mount.append(fuxi.timed("VolumeDriver.Mount", {"Name": name, "ID": "bench"}))
                fuxi.call("VolumeDriver.Unmount", {"Name": name, "ID": "bench"})
                fuxi.call("VolumeDriver.Remove", {"Name": name})
                say(f"  cold {name}: Create {create[-1]:.3f} s, Mount {mount[-1]:.3f} s")
            steps = steps_by_name(parse_steps(fuxi.log_path), set(names))
    return {"create_wall": create, "mount_wall": mount, "steps": steps, "injected": injected}


def run_warm(runs, log_copy):
    pool = {"size_gb": 1, "fstype": "ext4", "tier": 4, "min_ready": runs, "max": runs, "batch": runs,
            # One fill round at start-up, none while the clock runs.
            "refill_interval": 3600}
    with scratch("fuxi-seed-warm-") as workdir:
        fuxi = Fuxi(workdir, {"devcloud_latency_profile": "seed"}, pools={POOL: pool})
        with running(fuxi, log_copy):
            start = time.perf_counter()
            fuxi.wait_pool_ready(POOL, runs, timeout=60 + 15 * runs, say=say)
            fill_wall = time.perf_counter() - start
            names, create, mount = [], [], []
            for i in range(runs):
                name = f"warm{i}"
                names.append(name)
                create.append(fuxi.timed("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}}))
                mount.append(fuxi.timed("VolumeDriver.Mount", {"Name": name, "ID": "bench"}))
                say(f"  warm {name}: Create {create[-1]:.3f} s, Mount {mount[-1]:.3f} s")
            all_steps = parse_steps(fuxi.log_path)
            steps = steps_by_name(all_steps, set(names))
            fill_steps = {k: v for k, v in steps_by_name(all_steps).items()
                          if k.startswith("pool-") and k != "pool-claim"}
            cold_in_warm = {k: v for k, v in steps.items() if k in COLD_STEPS}
            if cold_in_warm:
                raise BenchError(f"warm volumes took cold steps {sorted(cold_in_warm)}: the pool did not serve "
                                 "them; see " + fuxi.log_path)
            # Unmount + Remove after the clock: they are not part of the figures.
            for name in names:
                fuxi.call("VolumeDriver.Unmount", {"Name": name, "ID": "bench"})
                fuxi.call("VolumeDriver.Remove", {"Name": name})
    return {"create_wall": create, "mount_wall": mount, "steps": steps, "fill_steps": fill_steps,
            "fill_wall": fill_wall}


def fmt(x):
    return "-" if x is None else f"{x:.3f}"


def plot(path, cold, warm, cold_med, warm_med):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mid = {k: (lo + hi) / 2 for k, (lo, hi) in SEED.items()}
    bars = {
        "seed talk\n(original fuxi, published\nstep midpoints)": [
            ("create", mid["create_volume"]),
            ("attach", mid["reserve"] + mid["initialize_connection"] + mid["connect_volume"] + mid["attach"]),
            ("mount (+mkfs)", mid["mount"]),
        ],
        "fuxi cold\n(seed profile)": [(s, cold_med[s]) for s in COLD_STEPS] + [("fuxi overhead", cold_med["other"])],
        "fuxi warm\ntier-4 pool": [("claim", warm_med["pool-claim"]), ("Mount (count)", warm_med["mount_wall"]),
                                   ("fuxi overhead", warm_med["other"])],
    }
    colors = {"create": "#4c72b0", "attach": "#dd8452", "mkfs": "#55a868", "mount": "#c44e52",
              "mount (+mkfs)": "#c44e52", "fuxi overhead": "#8c8c8c", "claim": "#8172b3",
              "Mount (count)": "#937860"}
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(11, 5.5), gridspec_kw={"width_ratios": [3, 1.2]})
    labels = list(bars)
    seen = set()
    for axis, which in ((ax, labels), (zoom, labels[2:])):
        for x, label in enumerate(which):
            bottom = 0.0
            for step, secs in bars[label]:
                axis.bar(x, secs, bottom=bottom, color=colors[step], width=0.6,
                         label=None if step in seen else step)
                seen.add(step)
                bottom += secs
            axis.text(x, bottom, f"{bottom:.3f} s" if bottom < 1 else f"{bottom:.2f} s", ha="center", va="bottom")
        axis.set_xticks(range(len(which)), which)
    ax.set_ylabel("seconds per new volume (Create + Mount, medians)")
    ax.set_title("New volume: where the time goes")
    zoom.set_title("warm, zoomed")
    handles, names = [], []
    for axis in (ax, zoom):
        for h, n in zip(*axis.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    ax.legend(handles, names, loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    exit_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="new volumes per path (default 5)")
    parser.add_argument("--png", default=os.path.join(results_dir(), "seed_steps.png"),
                        help="where to write the chart (default $FUXI_BENCH_OUT or /tmp/fuxi-bench-results)")
    parser.add_argument("--cold-only", action="store_true", help="skip the warm pool (no P3, no chart)")
    args = parser.parse_args()
    out = os.path.dirname(os.path.abspath(args.png))
    os.makedirs(out, exist_ok=True)

    say(f"cold path: {args.runs} volumes, devcloud latency profile seed")
    cold = run_cold(args.runs, os.path.join(out, "seed_steps-cold.log"))
    if args.cold_only:
        warm = {"create_wall": [float("nan")], "mount_wall": [float("nan")], "steps": {}, "fill_steps": {},
                "fill_wall": float("nan")}
    else:
        say(f"warm path: tier-4 pool of {args.runs}, devcloud latency profile seed")
        warm = run_warm(args.runs, os.path.join(out, "seed_steps-warm.log"))

    cold_med = {s: median(cold["steps"].get(s, [])) for s in COLD_STEPS}
    cold_med["create_wall"] = median(cold["create_wall"])
    cold_med["mount_wall"] = median(cold["mount_wall"])
    cold_cm = [c + m for c, m in zip(cold["create_wall"], cold["mount_wall"])]
    cold_med["cm"] = median(cold_cm)
    cold_med["other"] = cold_med["cm"] - sum(cold_med[s] for s in COLD_STEPS)
    warm_med = {"pool-claim": median(warm["steps"].get("pool-claim", []))}
    warm_med["create_wall"] = median(warm["create_wall"])
    warm_med["mount_wall"] = median(warm["mount_wall"])
    warm_cm = [c + m for c, m in zip(warm["create_wall"], warm["mount_wall"])]
    warm_med["cm"] = median(warm_cm)
    warm_med["other"] = warm_med["cm"] - warm_med["pool-claim"] - warm_med["mount_wall"]

    lat = cold["injected"]
    # A cold Create: one volume create; a cold Mount: one attachment create with a
    # connector (reserve + initialize_connection) and one os-complete (attach).
    inj_create = lat["create"]
    inj_mount = lat["reserve"] + lat["initialize_connection"] + lat["attach"]
    p2 = cold_med["cm"] / (inj_create + inj_mount)
    p3 = cold_med["cm"] / warm_med["cm"]

    rows = [
        ["create (Cinder create -> available)", seed_range("create_volume"), fmt(inj_create),
         fmt(cold_med["create"]), "-"],
        ["attach (reserve+init_conn+connect+complete)",
         seed_range("reserve", "initialize_connection", "connect_volume", "attach"), fmt(inj_mount),
         fmt(cold_med["attach"]), "-"],
        ["mkfs (blkid + mkfs.ext4)", "in mount", "0", fmt(cold_med["mkfs"]), "-"],
        ["mount", seed_range("mount"), "0", fmt(cold_med["mount"]), "-"],
        ["pool-claim (rename, untag, move mount)", "-", "0", "-", fmt(warm_med["pool-claim"])],
        ["Create wall", seed_range("create_volume"), fmt(inj_create), fmt(cold_med["create_wall"]),
         fmt(warm_med["create_wall"])],
        ["Mount wall (warm: bind = count only)",
         seed_range("reserve", "initialize_connection", "connect_volume", "attach", "mount"), fmt(inj_mount),
         fmt(cold_med["mount_wall"]), fmt(warm_med["mount_wall"])],
        ["Create+Mount wall", f"~{SEED_TOTAL} (whole docker run)", fmt(inj_create + inj_mount),
         fmt(cold_med["cm"]), fmt(warm_med["cm"])],
        ["  of which outside the steps", "-", "-", fmt(cold_med["other"]), fmt(warm_med["other"])],
    ]
    print(f"\nseconds per new volume, medians over {args.runs} (1 GiB ext4, devcloud latency profile seed, "
          f"loop devices)")
    print(table(rows, ["step", "seed talk", "injected", "fuxi cold", "fuxi warm"]))
    print()
    fill = warm["fill_steps"]
    print(f"warm pool fill (background, before the clock): {len(fill.get('pool-create', []))} volumes in "
          f"{warm['fill_wall']:.1f} s; per volume median: "
          + ", ".join(f"{k} {median(v):.3f} s" for k, v in sorted(fill.items())))
    print()
    print(table([
        ["P2 cold C+M / injected latency", f"{p2:.3f}", "<= 1.05", "ok" if p2 <= 1.05 else "MISSED"],
        ["P3 cold / warm C+M (seed)", f"{p3:.1f}x", ">= 20x", "ok" if p3 >= 20 else "MISSED"],
    ], ["figure", "measured", "goal", ""]))
    if args.cold_only:
        return
    plot(args.png, cold, warm, cold_med, warm_med)
    print(f"\nchart: {os.path.abspath(args.png)}")
    print(f"server logs: {out}/seed_steps-cold.log, {out}/seed_steps-warm.log")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(f"seed_steps: {exc}", file=sys.stderr)
        sys.exit(1)
