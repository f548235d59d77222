"""Time fuxi-csi from CreateVolume to a pod's volume ready, and back, on devcloud.

The calls the external-provisioner, external-attacher and kubelet make for a
new PVC and its pod: CreateVolume, ControllerPublishVolume, NodeStageVolume
(attach, mkfs on a blank volume, mount), NodePublishVolume (bind into the
pod); then the way out: NodeUnpublish, NodeUnstage, ControllerUnpublish,
DeleteVolume. Controller and node are two fuxi-csi processes. Cold: a blank
volume; warm: claimed from a tier 2 pool the controller keeps (created and
formatted ahead). Prints medians in seconds.

    python benchmarks/csi_attach.py [--runs 5] [--nova] [--latency-profile seed]

With `--latency-profile seed` devcloud answers as slowly as the cloud the seed's
figures were measured on (storage_core/devcloud/latency.py), which is where a
warm pool pays.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fuxi_csi.stubs import csi  # noqa: E402
from tests.clouds import start_devcloud  # noqa: E402
from tests.functional.csi_harness import CsiProcess, mount_capability, ok  # noqa: E402

GIB = 1024**3
CAP = mount_capability("ext4")
STEPS = ("create", "publish", "stage", "pod publish", "ready total", "release total")


def one_pvc(controller, node, node_id, name, kubelet):
    times = {}

    def timed(step, call):
        start = time.perf_counter()
        answer = ok(call())
        times[step] = time.perf_counter() - start
        return answer

    volume = timed("create", lambda: controller.call(
        "controller", "CreateVolume", name=name, volume_capabilities=[CAP],
        capacity_range=csi.CapacityRange(required_bytes=GIB))).volume
    context = timed("publish", lambda: controller.call(
        "controller", "ControllerPublishVolume", volume_id=name, node_id=node_id,
        volume_capability=CAP)).publish_context
    staging, target = kubelet / name / "globalmount", kubelet / name / "pod" / "mount"
    staging.mkdir(parents=True)
    target.parent.mkdir(parents=True)
    timed("stage", lambda: node.call("node", "NodeStageVolume", volume_id=name, publish_context=context,
                                     staging_target_path=str(staging), volume_capability=CAP,
                                     volume_context=volume.volume_context))
    timed("pod publish", lambda: node.call("node", "NodePublishVolume", volume_id=name, staging_target_path=str(staging),
                                           target_path=str(target), volume_capability=CAP))
    times["ready total"] = sum(times[s] for s in ("create", "publish", "stage", "pod publish"))
    start = time.perf_counter()
    ok(node.call("node", "NodeUnpublishVolume", volume_id=name, target_path=str(target)))
    ok(node.call("node", "NodeUnstageVolume", volume_id=name, staging_target_path=str(staging)))
    ok(controller.call("controller", "ControllerUnpublishVolume", volume_id=name, node_id=node_id))
    ok(controller.call("controller", "DeleteVolume", volume_id=name))
    times["release total"] = time.perf_counter() - start
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nova", action="store_true", help="attach through devcloud's Nova (the controller attaches)")
    parser.add_argument("--latency-profile", choices=("none", "seed"), default="none",
                        help="devcloud's latency profile (default: none)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fuxi-csi-bench-"))
    devcloud, cloud = start_devcloud(work / "cloud", nova=args.nova,
                                     share_args=("--latency-profile", args.latency_profile))
    pool = (f"[pool:warm]\nsize_gb = 1\nfstype = ext4\ntier = 2\nmin_ready = {args.runs}\nmax = {args.runs}\n"
            "batch = 2\nrefill_interval = 0.5\n")
    options = {"cloud": cloud.cloud_name, "backends": "cinder", **cloud.plugin_options}
    started = []
    try:
        rows = {}
        for label, extra in (("cold", ""), ("warm (tier 2 pool)", pool)):
            controller = CsiProcess(work / label / "controller", options, cloud.env(), "controller", extra).start()
            node = CsiProcess(work / label / "node", options, cloud.env(), "node").start()
            started += [controller, node]
            node_id = ok(node.call("node", "NodeGetInfo")).node_id
            if extra:
                deadline = time.monotonic() + 300
                while sum((v.metadata or {}).get("fuxi_pool_state") == "ready" and v.status == "available"
                          for v in cloud.sdk.block_storage.volumes(details=True)) < args.runs:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the pool did not fill within 300 s")
                    time.sleep(0.5)
            runs = [one_pvc(controller, node, node_id, f"pvc-{label.split()[0]}-{n}", work / label / "kubelet")
                    for n in range(args.runs)]
            rows[label] = {step: statistics.median(r[step] for r in runs) for step in STEPS}
    finally:
        for process in started:
            process.stop()
        cloud.sdk.close()
        devcloud.stop()
    path = "devcloud through Nova" if args.nova else "devcloud, bare metal"
    print(f"fuxi-csi, {path}, latency profile {args.latency_profile}, 1 GiB ext4, median of {args.runs} "
          "(seconds)\n")
    print("| volume | " + " | ".join(STEPS) + " |")
    print("| --- |" + " --- |" * len(STEPS))
    for label, medians in rows.items():
        print(f"| {label} | " + " | ".join(f"{medians[s]:.3f}" for s in STEPS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
