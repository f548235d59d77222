"""Fixtures of devcloud's own tests: a DevCloud in this process, and an SDK connection.

Imported by name into the test modules that drive devcloud directly, where they
replace the plugin tests' `cloud` fixture of conftest.py.
"""

import pytest

from storage_core.devcloud import DevCloud
from storage_core.devcloud.testing import connect, release_loop_devices_under


@pytest.fixture
def cloud(tmp_path):
    dc = DevCloud(tmp_path / "state").start()
    yield dc
    dc.stop()
    leaked = release_loop_devices_under(tmp_path)
    assert not leaked, f"the test leaked loop devices {leaked}"


@pytest.fixture
def conn(cloud):
    connection = connect(cloud)
    yield connection
    connection.close()
