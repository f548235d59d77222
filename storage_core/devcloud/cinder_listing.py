"""Cinder's list answers, shared by its faces (volumes, snapshots, backups):
filters, order, pages, the links to items and to the next page, the count.

The rules are Cinder's (cinder/api/common.py, its resource filters and
pagination): unknown filters refused from 3.34, newest first unless sorted,
``limit``/``marker``/``offset`` pages of at most ``MAX_LIMIT`` items, a
``{collection}_links`` next link while a page is full, ``count`` from 3.45.
"""

import ast
import json
from urllib.parse import quote

from storage_core.devcloud import microversion as mv
from storage_core.devcloud.backend import Invalid, NotFound
from storage_core.devcloud.web import Response

MAX_LIMIT = 1000  # Cinder's osapi_max_limit
SORT_KEYS = ("created_at", "updated_at", "id", "name", "size", "status")
# The paging and sorting parameters, which are not filters at all.
_LIST_PARAMETERS = frozenset(("limit", "marker", "offset", "sort", "sort_key", "sort_dir",
                              "with_count", "all_tenants"))


def list_answer(ctx, collection, records, detail, render) -> Response:
    """Cinder's answer to ``GET {collection}`` (``/detail`` with ``detail``):
    the filtered ``records`` sorted, one page of them as ``render(page)``
    shows it, the next page's link while there is one, and the total when
    asked for."""
    records = sort_records(records, ctx.req)
    page, next_marker = paginate(records, ctx.req)
    body = {collection: render(page)}
    if next_marker is not None:
        path = f"{collection}/detail" if detail else collection
        body[f"{collection}_links"] = [next_link(ctx, path, next_marker)]
    if with_count(ctx):
        body["count"] = len(records)
    return Response(200, body)


def check_filter_keys(ctx, filters):
    """From 3.34 Cinder refuses filters it does not know (``name~`` included)."""
    if ctx.version < mv.RESOURCE_FILTER:
        return
    invalid = [k for k in ctx.req.query if k not in filters | _LIST_PARAMETERS]
    if invalid:
        raise Invalid(f"Invalid filters {','.join(invalid)} are found in query options.")


def parse_metadata_filter(text):
    """Cinder takes ``metadata={'k': 'v'}`` (a Python/JSON dict literal).

    Anything else (e.g. ``metadata=k``, which is what requests makes of a dict
    passed as a query parameter) is no error in Cinder: its database layer
    just matches no volume. None here means exactly that.
    """
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
    return None


def filter_records(records, req, fields, metadata=False):
    """The records whose ``fields`` equal the query's (exact match, as Cinder's
    database filters), and with ``metadata``, whose metadata holds the query's
    ``metadata={...}`` (anything that is no dict matches nothing)."""
    wanted = {f: req.param(f) for f in fields if req.param(f) is not None}
    meta_text = req.param("metadata") if metadata else None
    meta_filter = parse_metadata_filter(meta_text) if meta_text else {}
    if meta_filter is None:
        return []
    return [
        r for r in records
        if all(str(r.get(f)) == v for f, v in wanted.items())
        and all(k in r["metadata"] and str(r["metadata"][k]) == str(v)
                for k, v in meta_filter.items())
    ]


def with_count(ctx) -> bool:
    """Whether a listing shows its total (``with_count``, from 3.45)."""
    return (ctx.version >= mv.APIVersion(3, 45)
            and str(ctx.req.param("with_count", "")).lower() in ("true", "1", "yes"))


def sort_records(records, req):
    """Cinder's default order is newest first; ``sort=key:dir,...`` overrides it."""
    keys = []
    if req.param("sort"):
        for item in req.param("sort").split(","):
            key, _, direction = item.strip().partition(":")
            keys.append((key, direction or "desc"))
    elif req.param("sort_key"):
        keys.append((req.param("sort_key"), req.param("sort_dir") or "desc"))
    keys = keys or [("created_at", "desc")]
    for key, direction in keys:
        if key not in SORT_KEYS:
            raise Invalid(f"Invalid input received: Invalid sort key {key}")
        if direction not in ("asc", "desc"):
            raise Invalid(f"Invalid input received: Invalid sort direction {direction}")
    # Stable sorts applied last key first give a multi-key order; id breaks ties.
    result = sorted(records, key=lambda r: r["id"], reverse=keys[0][1] == "desc")
    for key, direction in reversed(keys):
        result.sort(key=lambda r, k=key: (r[k] is None, r[k] if r[k] is not None else ""),
                    reverse=direction == "desc")
    return result


def paginate(items, req):
    """One page after ``marker`` of at most ``limit`` items, and the next marker."""
    limit_text = req.param("limit")
    if limit_text is None:
        limit = MAX_LIMIT
    else:
        try:
            limit = int(limit_text)
        except ValueError:
            raise Invalid("limit param must be an integer") from None
        if limit < 0:
            raise Invalid("limit param must be positive")
        limit = min(limit, MAX_LIMIT)
    marker = req.param("marker")
    if marker is not None:
        ids = [i["id"] for i in items]
        if marker not in ids:
            raise NotFound(f"Marker {marker} could not be found.")
        items = items[ids.index(marker) + 1:]
    offset_text = req.param("offset")
    if offset_text:
        try:
            items = items[int(offset_text):]
        except ValueError:
            raise Invalid("offset param must be an integer") from None
    page = items[:limit]
    more = len(page) == limit and limit > 0 and (len(items) > limit or limit_text is not None)
    return page, (page[-1]["id"] if more else None)


def links(ctx, collection, id_) -> list[dict]:
    """Cinder's "self" and "bookmark" links of one item of ``collection``."""
    return [
        {"href": f"{ctx.base_url}/volume/v3/{ctx.project_id}/{collection}/{id_}",
         "rel": "self"},
        {"href": f"{ctx.base_url}/volume/{ctx.project_id}/{collection}/{id_}",
         "rel": "bookmark"},
    ]


def next_link(ctx, path, marker) -> dict:
    """The link to the page of ``path`` after ``marker``, the query kept."""
    params = {k: v[-1] for k, v in ctx.req.query.items() if k not in ("marker",)}
    params["marker"] = marker
    query = "&".join(f"{k}={_quote(v)}" for k, v in params.items())
    return {"href": f"{ctx.base_url}/volume/v3/{ctx.project_id}/{path}?{query}",
            "rel": "next"}


def _quote(value):
    return quote(str(value), safe="")
