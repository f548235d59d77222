"""Cinder's paginated listings, read through the proxy's plain GETs."""

from urllib.parse import parse_qs, urlsplit

from openstack import exceptions as sdk_exceptions


def next_marker(body, links_key) -> str | None:
    """The marker of the next page, from a listing's ``<collection>_links``."""
    for link in body.get(links_key) or []:
        if link.get("rel") == "next":
            markers = parse_qs(urlsplit(link.get("href", "")).query).get("marker")
            if markers:
                return markers[-1]
    return None


def every_page(proxy, path, collection, params, microversion=None) -> list[dict]:
    """Every item of `collection` that GET `path` lists, page after page.

    Plain dicts, not openstacksdk's Resource objects: those cost about a
    millisecond each on the client, seconds for thousands of items.
    """
    params = dict(params)
    items = []
    while True:
        resp = proxy.get(path, params=params, **({"microversion": microversion} if microversion else {}))
        sdk_exceptions.raise_from_response(resp)
        body = resp.json()
        page = body.get(collection) or []
        items.extend(page)
        marker = next_marker(body, f"{collection}_links")
        if not page or marker is None:
            return items
        params["marker"] = marker
