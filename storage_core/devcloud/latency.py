"""Per-operation delays that make devcloud feel like a real, slow cloud.

Fuxi's waits and timeouts are only exercised when the cloud takes time, so the
figures of the ``seed`` profile are the ones measured on the original fuxi
(see REFERENCE.md, "Latency figures"). The default profile is ``none``: tests
that do not care about timing should not pay for it.
"""

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class LatencyProfile:
    """Seconds each operation takes; every field defaults to 0.

    ``create`` and ``delete`` are spent in the volume's ``creating`` /
    ``deleting`` status (asynchronously, as Cinder does them). The attachment
    figures are spent inside the HTTP call, because Cinder answers attachment
    create and complete synchronously.
    """

    name: str = "custom"
    #: volume create: time spent in ``creating`` before ``available``.
    create: float = 0.0
    #: volume delete: time spent in ``deleting`` before the volume is gone.
    delete: float = 0.0
    #: attachment create: reserving the volume (always paid).
    reserve: float = 0.0
    #: attachment create/update with a connector: exporting the volume.
    initialize_connection: float = 0.0
    #: attachment os-complete: marking the volume in-use.
    attach: float = 0.0
    #: attachment delete: terminating the connection and detaching.
    detach: float = 0.0
    #: share access rules: time in ``queued_to_apply`` / ``queued_to_deny``
    #: (shares themselves spend ``create`` / ``delete``).
    access: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            if f.name == "name":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"latency {f.name} must be a number >= 0, not {value!r}")

    @classmethod
    def named(cls, name: str) -> "LatencyProfile":
        """The built-in profile called ``name`` (``none`` or ``seed``)."""
        try:
            return PROFILES[name]
        except KeyError:
            raise ValueError(
                f"unknown latency profile {name!r}; known: {', '.join(sorted(PROFILES))}"
            ) from None

    @classmethod
    def coerce(cls, value) -> "LatencyProfile":
        """Accept None (no latency), a profile name, a dict of fields or a profile."""
        if value is None:
            return PROFILES["none"]
        if isinstance(value, LatencyProfile):
            return value
        if isinstance(value, str):
            return cls.named(value)
        if isinstance(value, dict):
            value = dict(value)
            base = cls.named(value.pop("profile")) if "profile" in value else PROFILES["none"]
            known = {f.name for f in fields(cls)}
            unknown = set(value) - known
            if unknown:
                raise ValueError(f"unknown latency fields: {', '.join(sorted(unknown))}")
            if "name" not in value:
                value["name"] = base.name if not value else "custom"
            return replace(base, **value)
        raise TypeError(f"cannot make a LatencyProfile from {type(value).__name__}")

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "none": LatencyProfile(name="none"),
    # The seed talk: create_volume 1.5 s, reserve 0.2 s, initialize_connection
    # 0.6-1.0 s (0.7 taken), attach 0.7 s. Detach and delete were not measured.
    "seed": LatencyProfile(
        name="seed", create=1.5, reserve=0.2, initialize_connection=0.7, attach=0.7
    ),
}
