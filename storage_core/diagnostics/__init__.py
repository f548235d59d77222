"""Checks of what a storage_core host needs, as data: the cloud (configured,
reachable, credentials accepted, the services and API versions storage_core
uses, this host's Nova server) and the host (how volumes reach it, os-brick's
connector, kernel support for each attach path, file system and share
protocol).

Each finding is a Check: what was checked, what was found and, for anything not
OK, what to do about it. Nothing here prints; a caller (a CLI, a health
endpoint) renders them. Kernel facts come from HostFacts and cloud facts from
CloudProbe, both replaceable, so every branch is testable on any machine.

openstacksdk and keystoneauth are imported by the cloud checks when they run:
a caller that only renders Check records stays quick to start.
"""

from storage_core.diagnostics.checks import FAIL, INFO, OK, STATUSES, WARN, Check, not_checked
from storage_core.diagnostics.cloud import AuthFacts, CloudDiagnosis, CloudProbe, EndpointFacts
from storage_core.diagnostics.diagnosis import Diagnosis
from storage_core.diagnostics.host import HostDiagnosis, HostFacts

__all__ = ["FAIL", "INFO", "OK", "STATUSES", "WARN", "Check", "not_checked", "AuthFacts", "CloudDiagnosis",
           "CloudProbe", "EndpointFacts", "Diagnosis", "HostDiagnosis", "HostFacts"]
