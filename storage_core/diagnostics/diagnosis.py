"""Every storage check in order."""

from dataclasses import dataclass, field
from typing import Callable, Iterator

from storage_core.config import StorageConfig
from storage_core.diagnostics.checks import Check
from storage_core.diagnostics.cloud import CloudDiagnosis, is_loopback_url
from storage_core.diagnostics.host import HostDiagnosis, HostFacts
from storage_core.host import InstanceLocator


@dataclass
class Diagnosis:
    """Every storage check in order: the attach mode, the cloud, then the host."""

    config: StorageConfig
    facts: HostFacts | None = None
    brick: object = None
    probe_factory: Callable | None = None
    locator: InstanceLocator | None = None
    # Filled in while run() goes: what later callers may want to know.
    cloud: CloudDiagnosis | None = field(default=None, init=False)

    def run(self) -> Iterator[Check]:
        host = HostDiagnosis(self.config, self.facts, self.brick, self.locator)
        # First: the cloud checks need the attach mode and this host's instance.
        yield host.attach_mode_check()
        self.cloud = CloudDiagnosis(self.config, host.attach_mode, host.instance_uuid, self.probe_factory)
        yield from self.cloud.run()
        yield from host.run(cloud_is_local=is_loopback_url(self.cloud.auth_url),
                            manila_available=self.cloud.manila_available)
