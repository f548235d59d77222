"""P4: many cold Create+Mounts at once cost about what one does.

For each devcloud latency profile (`none`, `seed`), starts `fuxi-server
--devcloud` with `threads = --threads` (>= the parallelism, or requests queue in
gunicorn), warms it up with one volume, then times

  one:      Create + Mount of one new volume (median of --single runs);
  parallel: --parallel threads, each with its own connection, released at
            once, each doing Create + Mount of its own new volume; wall time
            from the release to the last Mount's answer.

Goal: parallel / one <= 2. Also prints, per step, the median and max seconds
fuxi's own timing log shows in the parallel batch against the single runs, so
a step that serialises stands out. No pool is configured: every call is cold.

    python benchmarks/parallel_cold.py [--parallel 32] [--single 3] [--profiles none,seed]
"""

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil

from fuxi_bench import (BenchError, Fuxi, exit_on_signals, median, parse_steps, running, scratch,
                        steps_by_name, table)

STEPS = ("create", "attach", "mkfs", "mount")


def say(text):
    print(text, file=sys.stderr, flush=True)


def create_mount(fuxi, name):
    start = time.perf_counter()
    fuxi.call("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}})
    created = time.perf_counter()
    fuxi.call("VolumeDriver.Mount", {"Name": name, "ID": "bench"})
    end = time.perf_counter()
    return start, created, end


def release(fuxi, names, workers):
    def one(name):
        fuxi.call("VolumeDriver.Unmount", {"Name": name, "ID": "bench"})
        fuxi.call("VolumeDriver.Remove", {"Name": name})

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, names))


def run_profile(profile, parallel, single, threads, backends):
    options = {"devcloud_latency_profile": profile, "threads": threads}
    if backends:
        options["backends"] = backends
    with scratch(f"fuxi-par-{profile}-") as workdir:
        fuxi = Fuxi(workdir, options)
        with running(fuxi):
            # Warm-up: the first attach also reads the host's connector properties.
            create_mount(fuxi, "warmup")
            release(fuxi, ["warmup"], 1)
            procs = fuxi.processes()

            def cpu():
                # user + system of the process and of the commands it ran and reaped (mkfs, mount, losetup)
                used = {k: sum(p.cpu_times()[:4]) for k, p in procs.items()}
                machine = psutil.cpu_times()
                used["machine"] = machine.user + machine.system + machine.nice + machine.irq + machine.softirq
                return used

            singles, single_names = [], []
            cpu0 = cpu()
            for i in range(single):
                name = f"one{i}"
                start, _c, end = create_mount(fuxi, name)
                singles.append(end - start)
                single_names.append(name)
                cpu1 = cpu()
                release(fuxi, [name], 1)
                cpu0 = {k: cpu0[k] + cpu()[k] - cpu1[k] for k in cpu0}  # leave release out
            cpu_single = {k: (cpu()[k] - cpu0[k]) / single for k in cpu0}
            say(f"  {profile}: one Create+Mount {median(singles):.3f} s (median of {single})")

            names = [f"par{i:02d}" for i in range(parallel)]
            gate = threading.Barrier(parallel + 1)
            results = {}

            def worker(name):
                gate.wait()
                results[name] = create_mount(fuxi, name)

            with ThreadPoolExecutor(parallel) as pool:
                futures = [pool.submit(worker, n) for n in names]
                gate.wait()
                t0, c0 = time.perf_counter(), cpu()
                errors = [f.exception() for f in futures]
                wall, c1 = time.perf_counter() - t0, cpu()
            cpu_par = {k: c1[k] - c0[k] for k in c0}
            errors = [e for e in errors if e]
            if errors:
                raise BenchError(f"{len(errors)} of {parallel} parallel Create+Mounts failed, e.g. {errors[0]}")
            per_volume = [end - start for start, _c, end in results.values()]
            creates = [c - start for start, c, _e in results.values()]
            say(f"  {profile}: {parallel} at once {wall:.3f} s")
            steps = parse_steps(fuxi.log_path)
            release(fuxi, names, min(parallel, 8))
    return {
        "cpu_single": cpu_single, "cpu_par": cpu_par,
        "single": median(singles), "wall": wall, "per_volume": per_volume, "creates": creates,
        "steps_single": steps_by_name(steps, set(single_names)), "steps_par": steps_by_name(steps, set(names)),
    }


def main():
    exit_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, default=32, help="volumes made at once (default 32)")
    parser.add_argument("--single", type=int, default=3, help="single runs to take the median of (default 3)")
    parser.add_argument("--threads", type=int, default=0,
                        help="fuxi-server request threads (default: parallel + 8)")
    parser.add_argument("--profiles", default="none,seed", help="devcloud latency profiles (default none,seed)")
    parser.add_argument("--backends", default="",
                        help="fuxi's backends option (default: fuxi's own, cinder,manila)")
    args = parser.parse_args()
    threads = args.threads or args.parallel + 8
    if threads < args.parallel:
        parser.error("--threads must be at least --parallel, or requests wait in gunicorn's queue")

    results = {}
    for profile in args.profiles.split(","):
        say(f"profile {profile}: fuxi-server threads = {threads}")
        results[profile] = run_profile(profile, args.parallel, args.single, threads, args.backends)

    print(f"\n{args.parallel} cold Create+Mounts at once vs one (1 GiB ext4, loop devices, "
          f"fuxi-server threads = {threads}, backends = {args.backends or 'cinder,manila'}, "
          f"{os.cpu_count()} cores)")
    rows = []
    for profile, r in results.items():
        ratio = r["wall"] / r["single"]
        rows.append([profile, f"{r['single']:.3f}", f"{r['wall']:.3f}", f"{median(r['per_volume']):.3f}",
                     f"{max(r['per_volume']):.3f}", f"{ratio:.2f}", "<= 2", "ok" if ratio <= 2 else "MISSED"])
    print(table(rows, ["profile", "one (s)", f"{args.parallel} wall (s)", "each median", "each max",
                       "ratio", "goal", ""]))
    print("\nper step, seconds: single runs median | parallel batch median / max")
    rows = []
    for profile, r in results.items():
        for step in STEPS:
            one, par = r["steps_single"].get(step, []), r["steps_par"].get(step, [])
            rows.append([profile, step, f"{median(one):.3f}",
                         f"{median(par):.3f}" if par else "-", f"{max(par):.3f}" if par else "-"])
        rows.append([profile, "Create wall (client)", "-", f"{median(r['creates']):.3f}", f"{max(r['creates']):.3f}"])
    print(table(rows, ["profile", "step", "one", "parallel median", "parallel max"]))
    print("\nCPU seconds (user+system, with the commands each ran) per single Create+Mount | for the whole "
          "parallel batch (cores busy = CPU s / wall s); machine = every process on it")
    rows = []
    for profile, r in results.items():
        for proc in ("worker", "devcloud", "master", "machine"):
            one, par = r["cpu_single"].get(proc, 0.0), r["cpu_par"].get(proc, 0.0)
            rows.append([profile, proc, f"{one:.3f}", f"{par:.2f}", f"{par / r['wall']:.2f}"])
    print(table(rows, ["profile", "process", "one", "parallel batch", "cores busy"]))


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(f"parallel_cold: {exc}", file=sys.stderr)
        sys.exit(1)
