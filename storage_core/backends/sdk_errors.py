"""openstacksdk/keystoneauth exceptions -> storage_core's tree, for every backend.

Each backend says which service it was talking to, so a message reads
"... Nova answered HTTP 409 ..." rather than blaming the wrong service.
"""

from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as sdk_exceptions

from storage_core.errors import CloudError, NotFound


class translate_errors:
    """Context manager: re-raise SDK/keystoneauth exceptions as storage_core errors.

    Callers that want a more specific answer for one status (a 400 that means
    "conflict") catch it inside the block; everything else ends up here.
    """

    def __init__(self, doing, service="Cinder"):
        self.doing = doing
        self.service = service

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        if isinstance(exc, sdk_exceptions.NotFoundException):
            raise NotFound(f"{self.doing}: not found in {self.service} ({detail(exc)})") from exc
        if isinstance(exc, sdk_exceptions.HttpException):
            raise CloudError(
                f"{self.doing}: {self.service} answered HTTP {exc.status_code}: {detail(exc)}"
            ) from exc
        if isinstance(exc, (sdk_exceptions.SDKException, ks_exceptions.ClientException)):
            raise CloudError(f"{self.doing}: {exc}") from exc
        return False


def detail(exc) -> str:
    """The service's own words when it gave any, else the exception's text."""
    return getattr(exc, "details", None) or str(exc)
