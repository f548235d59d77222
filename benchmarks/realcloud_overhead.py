"""fuxi's Create+Mount against a plain openstacksdk + os-brick script, on real Cinder.

Both do the same cloud calls and host work for a new 1 GiB volume: create it
and wait for `available`, create an attachment with this host's connector
(3.27), os-brick connect_volume, complete it (3.44), mkfs.ext4, mount. The
plain script polls every 50 ms, like fuxi in its first seconds. Runs alternate
(plain, fuxi, plain, ...) so drift hits both. Prints medians and the ratio;
goal: fuxi <= 1.1x the plain script.

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
POLL = 0.05


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
        vol = bs.create_volume(name=name, size=1)
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
    def __init__(self, clouds_yaml, cloud, workdir):
        super().__init__(workdir, f"cloud = {cloud}\n", env={"OS_CLIENT_CONFIG_FILE": clouds_yaml})
        # Warm up like a long-running server: token, catalog, version discovery.
        self.call("VolumeDriver.List", {})

    def create_and_mount(self, name):
        self.call("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}})
        self.call("VolumeDriver.Mount", {"Name": name, "ID": "bench"})

    def clean_up(self, name):
        self.call("VolumeDriver.Unmount", {"Name": name, "ID": "bench"})
        self.call("VolumeDriver.Remove", {"Name": name})


def measure(clouds_yaml, cloud, runs):
    plain_times, fuxi_times = [], []
    with tempfile.TemporaryDirectory(prefix="fuxi-overhead-") as workdir:
        plain = PlainScript(clouds_yaml, cloud, os.path.join(workdir, "plain"))
        fuxi = FuxiServer(clouds_yaml, cloud, workdir)
        try:
            warm = plain.create_and_mount("warmup")  # first-call costs out of the figures
            plain.clean_up(*warm)
            for i in range(runs):
                start = time.perf_counter()
                made = plain.create_and_mount(f"plain{i}")
                plain_times.append(time.perf_counter() - start)
                plain.clean_up(*made)

                start = time.perf_counter()
                fuxi.create_and_mount(f"fuxi{i}")
                fuxi_times.append(time.perf_counter() - start)
                fuxi.clean_up(f"fuxi{i}")
        finally:
            fuxi.stop()
    return plain_times, fuxi_times


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
        plain, fuxi = measure(clouds_yaml, args.cloud, args.runs)
    finally:
        if realcloud is not None:
            realcloud.stop(args.realcloud_dir)

    p, f = statistics.median(plain), statistics.median(fuxi)
    print(f"Create+Mount of a new 1 GiB ext4 volume on real Cinder, {args.runs} alternating runs")
    print(f"{'':<16}{'median s':>10}{'min s':>10}{'max s':>10}")
    print(f"{'plain script':<16}{p:10.3f}{min(plain):10.3f}{max(plain):10.3f}")
    print(f"{'fuxi':<16}{f:10.3f}{min(fuxi):10.3f}{max(fuxi):10.3f}")
    print(f"{'ratio fuxi/plain':<16}{f / p:10.2f}   (goal <= 1.10)")


if __name__ == "__main__":
    main()
