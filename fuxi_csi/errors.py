"""storage_core's errors as the gRPC status codes the CSI specification asks for."""

import contextlib

import grpc

from storage_core.errors import (
    CloudError,
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    NotOwned,
    StorageError,
    Timeout,
)
from storage_core.names import validate_volume_name
Code = grpc.StatusCode


def _code_of(exc, conflict, not_owned) -> grpc.StatusCode:
    if isinstance(exc, InvalidInput):
        return Code.INVALID_ARGUMENT
    if isinstance(exc, NotFound):
        return Code.NOT_FOUND
    if isinstance(exc, NotOwned):
        return not_owned
    if isinstance(exc, Conflict):
        return conflict
    if isinstance(exc, Timeout):
        return Code.DEADLINE_EXCEEDED
    if isinstance(exc, CloudError):
        # The sidecars and kubelet call again: a cloud that failed may answer then.
        return Code.UNAVAILABLE
    if isinstance(exc, ConfigError):
        return Code.FAILED_PRECONDITION
    return Code.INTERNAL


@contextlib.contextmanager
def answering(context, conflict=Code.FAILED_PRECONDITION, not_owned=Code.FAILED_PRECONDITION):
    """End the call with the status code of any StorageError raised inside
    (fuxi_csi.call_log logs it with the call).

    `conflict`: the code of a Conflict (a volume in use, another volume by that
    name ...), which differs between calls; `not_owned`: of a name fuxi did not
    create (ALREADY_EXISTS for a CreateVolume of it)."""
    try:
        yield
    except StorageError as exc:
        context.abort(_code_of(exc, conflict, not_owned), str(exc))


def require(context, value, field):
    """The request's `field`, which the specification makes required."""
    if not value:
        context.abort(Code.INVALID_ARGUMENT, f"{field} is required")
    return value


def volume_name(volume_id) -> str | None:
    """The storage_core volume name `volume_id` is (fuxi-csi's volume ids are
    names), or None: an id that could never be a name names no volume."""
    try:
        return validate_volume_name(volume_id)
    except InvalidInput:
        return None


def known_name(context, volume_id, field="volume_id") -> str:
    """The volume name of a required `volume_id`; NOT_FOUND for one that is no name."""
    require(context, volume_id, field)
    name = volume_name(volume_id)
    if name is None:
        context.abort(Code.NOT_FOUND, f"volume {volume_id!r} does not exist (fuxi-csi's volume ids are volume names)")
    return name
