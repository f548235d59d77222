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
        if isinstance(exc, ks_exceptions.ConnectionError):
            raise CloudError(f"{self.doing}: {no_answer(exc, self.service)}") from exc
        if isinstance(exc, ks_exceptions.HttpError):
            # keystoneauth's own requests: a token, version discovery.
            raise CloudError(f"{self.doing}: {_keystoneauth_http(exc, self.service)}") from exc
        if isinstance(exc, (sdk_exceptions.SDKException, ks_exceptions.ClientException)):
            raise CloudError(f"{self.doing}: {exc}") from exc
        return False


def detail(exc) -> str:
    """The service's own words when it gave any, else the exception's text."""
    return getattr(exc, "details", None) or str(exc)


def no_answer(exc, service) -> str:
    """What went wrong when the cloud gave no answer at all, in a few words.

    keystoneauth's texts carry urllib3's whole chain ("Max retries exceeded
    with url ... Caused by ReadTimeoutError(...)"); the user needs the gist,
    the request, and that it was tried again where that was safe.
    """
    text = str(exc)
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        what = "timed out waiting for an answer"
    elif "refused" in lowered:
        what = "the connection was refused"
    elif any(w in lowered for w in ("reset by peer", "connection aborted", "remotedisconnected",
                                    "without response", "broken pipe")):
        what = "the connection was dropped before an answer came"
    elif "name or service not known" in lowered or "failed to resolve" in lowered:
        what = "the cloud's host name does not resolve"
    else:
        what = "the request failed"
    url = _url_in(text)
    if "/auth/tokens" in url:
        service = "Keystone"  # the token keystoneauth fetched first, not the call itself
    return f"no answer from {service}: {what}" + (f" ({url})" if url else "")


def _url_in(text) -> str:
    """The first http(s) URL in keystoneauth's message, without its query."""
    for word in text.replace("'", " ").replace('"', " ").split():
        if word.startswith(("http://", "https://")):
            return word.rstrip(":,.").split("?")[0]
    return ""


def _keystoneauth_http(exc, service) -> str:
    status = getattr(exc, "http_status", None) or "?"
    message = getattr(exc, "message", None) or str(exc)
    url = getattr(exc, "url", None) or ""
    if "/auth/tokens" in url:
        return f"Keystone answered HTTP {status} to a token request: {message}"
    return f"{service} answered HTTP {status}: {message}"
