"""What a check says: a Check record and its statuses."""

from dataclasses import dataclass


OK, INFO, WARN, FAIL = "OK", "INFO", "WARN", "FAIL"
# INFO: a fact that is no problem unless the host is meant to use it (a storage
# protocol no backend of the cloud may export), or a check that could not run
# because an earlier one failed.
STATUSES = (OK, INFO, WARN, FAIL)


@dataclass(frozen=True)
class Check:
    area: str  # what part of the set-up: "config", "cloud", "host", ...
    what: str  # what was checked, in a few words
    status: str
    found: str  # what was found
    fix: str = ""  # what to do; required for WARN and FAIL

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"check status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.status in (WARN, FAIL) and not self.fix:
            raise ValueError(f"check {self.what!r} is {self.status} but says no fix")


def not_checked(area, what, because) -> Check:
    return Check(area, what, INFO, f"not checked: {because}")
