"""A crash of fuxi-server while a volume's file system is frozen for a snapshot
(crash point copy.frozen) leaves every write to it waiting; the next start
thaws it before it answers anything, and the snapshot was never asked for."""

import subprocess
import time

from storage_core.crashpoints import ENV
from tests.functional.test_cli import fuxi
from tests.functional.test_snapshots import create, mount, unmount_and_remove

# The freeze is the host's: one cloud shows it.
CLOUD_KINDS = ("devcloud",)


def test_a_crash_while_frozen_is_thawed_at_the_next_start(cloud, plugin_factory):
    plugin = plugin_factory().start()
    create(plugin, "hot", size="1")
    path = mount(plugin, "hot")
    plugin.env[ENV] = "copy.frozen"
    plugin.stop()
    plugin.start()
    blocked = None
    try:
        rc, _out, _err = fuxi("--socket", plugin.socket, "snapshot", "create", "hot")
        assert rc == 1 and plugin.process.wait(10) is not None
        # Frozen: a write waits (in the kernel; it cannot even be killed until the thaw).
        blocked = subprocess.Popen(["sh", "-c", f"echo after > {path}/after"])
        time.sleep(1.0)
        assert blocked.poll() is None, "the file system was not left frozen by the crash"
        del plugin.env[ENV]
        plugin.start()
        assert blocked.wait(10) == 0
        assert "its file system was left frozen (a crash during a snapshot); thawed it" in plugin.log(tail=None)
    finally:
        subprocess.run(["fsfreeze", "--unfreeze", path], capture_output=True)
        if blocked is not None:
            blocked.wait(10)
    assert list(cloud.sdk.block_storage.snapshots()) == []
    unmount_and_remove(plugin, "hot")
