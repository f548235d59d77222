import os
import subprocess

import pytest

from tests.clouds import start_devcloud
from storage_core.devcloud.testing import release_loop_devices_under
from tests.functional.harness import PluginProcess, mounted_under
from tests.share_servers import devcloud_share_args


@pytest.fixture
def cloud(cloud_kind, tmp_path, request):
    """The cloud of this parametrisation, empty at the start of the test.

    A module that sets SHARE_SERVERS = True gets devcloud's Manila backed by
    the session's real GlusterFS and CephFS, and plugins that can mount them.
    """
    share_args = ()
    if getattr(request.module, "SHARE_SERVERS", False):
        gluster, ceph = request.getfixturevalue("glusterfs_server"), request.getfixturevalue("cephfs_server")
        share_args = devcloud_share_args(gluster, ceph)
    if cloud_kind.startswith("devcloud"):
        devcloud, cloud = start_devcloud(tmp_path, nova=cloud_kind == "devcloud-nova", share_args=share_args)
    else:
        devcloud, cloud = None, request.getfixturevalue("realcloud_stack").cloud()
        cloud.empty_project()  # whatever an interrupted earlier run left
    if share_args:
        cloud.plugin_options["ceph_conf"] = ceph.conf  # the test Ceph runs without cephx
    yield cloud
    try:
        if devcloud is None:
            cloud.empty_project()
    finally:
        # Its keep-alive connections would otherwise stay open to the cloud's API
        # servers (each holds one of cinder-api's green threads) until collected.
        cloud.sdk.close()
        if devcloud is not None:
            devcloud.stop()
    # Released for the next test, but this one still fails.
    leaked = release_loop_devices_under(cloud.root)
    assert not leaked, f"loop devices left bound: {leaked}"


@pytest.fixture
def plugin_factory(tmp_path, cloud):
    started = []

    def make(workdir=None, options=None, cloud_name=None):
        """A fuxi-server on this cloud; `options` add to or override fuxi.conf lines."""
        workdir = workdir or tmp_path / "host"
        os.makedirs(workdir, exist_ok=True)
        # These tests mount as dockerd would but run no container: no mount namespace
        # ever holds their volumes, so counts must not be judged stale mid-test.
        settings = {"cloud": cloud_name or cloud.cloud_name, "max_size_gb": 10, "stale_mount_grace": 86400,
                    **cloud.plugin_options, **(options or {})}
        config = workdir / "fuxi.conf"
        config.write_text("[fuxi]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        plugin = PluginProcess(workdir, ["--config-file", str(config)], env=cloud.env())
        started.append(plugin)
        return plugin

    yield make
    for plugin in started:
        plugin.stop()
    for plugin in started:
        for mountpoint in mounted_under(plugin.workdir):
            subprocess.run(["umount", "-l", mountpoint], check=False)


@pytest.fixture
def plugin(plugin_factory):
    return plugin_factory().start()


def pytest_collection_modifyitems(config, items):
    """A module may run a parameter's cases on some cloud kinds only:
    ONLY_ON_CLOUD_KINDS = {param name: {value: cloud kinds}}. The other
    combinations are deselected (reported as such), not skipped: they are
    not tests that could not run, but cases that add nothing on that cloud."""
    kept, dropped = [], []
    for item in items:
        narrowing = getattr(item.module, "ONLY_ON_CLOUD_KINDS", None)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if narrowing and "cloud_kind" in params and any(
                params.get(name) in kinds_of and params["cloud_kind"] not in kinds_of[params[name]]
                for name, kinds_of in narrowing.items()):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
