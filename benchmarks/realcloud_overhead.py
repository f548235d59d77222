"""fuxi's Create+Mount against a plain openstacksdk + os-brick script, on real Cinder.

Both do the same cloud calls and host work for a new 1 GiB volume: create it
and wait for `available`, create an attachment with this host's connector
(3.27), os-brick connect_volume, complete it (3.44), mkfs.ext4, mount. The
plain script polls every 20 ms, like fuxi in the first second of a wait. Runs alternate
(plain, fuxi, plain, ...) so drift hits both. Prints medians and the ratio;
goal: fuxi <= 1.1x the plain script.

fuxi runs twice, alternating with the plain script: configured with
`backends = cinder`, doing exactly the plain script's calls (the goal's
like-for-like row), and with the default `backends = cinder,manila`, where a
Create also asks Manila whether a share already holds the name.

    python benchmarks/realcloud_overhead.py [--runs 7] [--realcloud-dir .realcloud]

It installs and starts the real Keystone + Cinder (contrib/realcloud) unless
--clouds-yaml/--cloud point at a running cloud, and stops what it started.
"""

import argparse
import importlib.util
import os
import statistics
import subprocess
import tempfile
import time

from plugin_process import REPO, PluginServer
POLL = 0.02  # like fuxi in the first second of a wait


def load_realcloud():
    spec = importlib.util.spec_from_file_location("realcloud", REPO / "contrib" / "realcloud" / "realcloud.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PlainScript:
    """What a careful hand-written script does, with no bookkeeping at all."""

    def __init__(self, clouds_yaml, cloud, workdir):
        import openstack
        import os_brick.privileged
        from oslo_concurrency import lockutils

        lockutils.set_defaults(lock_path=os.path.join(workdir, "locks"))
        os_brick.privileged.default.set_client_mode(False)
        from os_brick.initiator import connector

        config = openstack.config.OpenStackConfig(config_files=[clouds_yaml])
        self.conn = openstack.connection.Connection(config=config.get_one(cloud=cloud))
        self.connector_props = connector.get_connector_properties(None, "127.0.0.1", False, False)
        self.brick = connector.InitiatorConnector.factory("LOCAL", None)
        self.workdir = workdir

    def create_and_mount(self, name):
        bs = self.conn.block_storage
        # The same request as fuxi's, ownership tag and file system type included.
        vol = bs.create_volume(name=name, size=1, metadata={"volume_from": "fuxi", "fstype": "ext4"})
        while bs.get_volume(vol.id).status != "available":
            time.sleep(POLL)
        att = bs.create_attachment(vol.id, connector=self.connector_props, mode="rw")
        # The attachments API returns connection info flat (no "data" level).
        device = self.brick.connect_volume(att.connection_info)["path"]
        bs.complete_attachment(att.id)
        subprocess.run(["mkfs.ext4", "-q", device], check=True)
        mountpoint = os.path.join(self.workdir, name)
        os.makedirs(mountpoint, exist_ok=True)
        subprocess.run(["mount", "-t", "ext4", device, mountpoint], check=True)
        return vol.id, att, mountpoint

    def clean_up(self, vol_id, att, mountpoint):
        bs = self.conn.block_storage
        subprocess.run(["umount", mountpoint], check=True)
        self.brick.disconnect_volume(att.connection_info, None)
        bs.delete_attachment(att.id)
        bs.delete_volume(vol_id)
        while bs.find_volume(vol_id, ignore_missing=True) is not None:
            time.sleep(POLL)


class FuxiServer(PluginServer):
    def __init__(self, clouds_yaml, cloud, workdir, backends):
        os.makedirs(workdir, exist_ok=True)
        super().__init__(workdir, f"cloud = {cloud}\nbackends = {backends}\n",
                         env={"OS_CLIENT_CONFIG_FILE": clouds_yaml})
        # Warm up like a long-running server: token, catalog, version discovery.
        self.call("VolumeDriver.List", {})

    def create_and_mount(self, name):
        self.call("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}})
        self.call("VolumeDriver.Mount", {"Name": name, "ID": "bench"})

    def clean_up(self, name):
        self.call("VolumeDriver.Unmount", {"Name": name, "ID": "bench"})
        self.call("VolumeDriver.Remove", {"Name": name})


FUXI_CONFIGS = {"fuxi": "cinder", "fuxi +manila": "cinder,manila"}


def measure(clouds_yaml, cloud, runs):
    times = {"plain script": [], **{label: [] for label in FUXI_CONFIGS}}
    with tempfile.TemporaryDirectory(prefix="fuxi-overhead-") as workdir:
        plain = PlainScript(clouds_yaml, cloud, os.path.join(workdir, "plain"))
        servers = {}
        try:
            for label, backends in FUXI_CONFIGS.items():
                servers[label] = FuxiServer(clouds_yaml, cloud, os.path.join(workdir, backends), backends)
            warm = plain.create_and_mount("warmup")  # first-call costs out of the figures
            plain.clean_up(*warm)
            for i in range(runs):
                start = time.perf_counter()
                made = plain.create_and_mount(f"plain{i}")
                times["plain script"].append(time.perf_counter() - start)
                plain.clean_up(*made)

                for n, (label, fuxi) in enumerate(servers.items()):
                    name = f"fuxi{n}-{i}"
                    start = time.perf_counter()
                    fuxi.create_and_mount(name)
                    times[label].append(time.perf_counter() - start)
                    fuxi.clean_up(name)
        finally:
            for fuxi in servers.values():
                fuxi.stop()
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--realcloud-dir", default=str(REPO / ".realcloud"))
    parser.add_argument("--clouds-yaml", help="use this running cloud instead of starting one")
    parser.add_argument("--cloud", default="realcloud")
    args = parser.parse_args()

    realcloud = None
    clouds_yaml = args.clouds_yaml
    if not clouds_yaml:
        realcloud = load_realcloud()
        realcloud.install(args.realcloud_dir)
        clouds_yaml = realcloud.start(args.realcloud_dir)["clouds_yaml"]
    try:
        times = measure(clouds_yaml, args.cloud, args.runs)
    finally:
        if realcloud is not None:
            realcloud.stop(args.realcloud_dir)

    plain = statistics.median(times["plain script"])
    print(f"Create+Mount of a new 1 GiB ext4 volume on real Cinder, {args.runs} alternating runs")
    print(f"{'':<14}{'median s':>10}{'min s':>10}{'max s':>10}{'/ plain':>10}")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:<14}{median:10.3f}{min(values):10.3f}{max(values):10.3f}{median / plain:10.2f}")
    print("goal: fuxi / plain <= 1.10 (the like-for-like row, backends = cinder)")


if __name__ == "__main__":
    main()
