"""The metadata of one volume or snapshot in Cinder's API:
``{collection}/{id}/metadata`` and ``.../metadata/{key}``.

Reading, replacing and deleting work the same for both collections, so their
faces (cinder.py, cinder_snapshots.py) share these handlers. Writing does
not: Cinder checks a volume's metadata body after looking the volume up, and
a snapshot's before, in other words; each face keeps its own
``_update_metadata`` and ``_set_metadata_item``.
"""

from storage_core.devcloud.web import Response, Route


class MetadataHandlers:
    """Mixed into a collection's face, which provides:

    * ``_metadata_owner(ctx, record_id)``: the record (or its 404);
    * ``_metadata_not_found(record_id, key)``: the NotFound of a missing key;
    * ``_update_metadata(ctx, record_id, replace=False)`` and
      ``_set_metadata_item(ctx, record_id, key)``;
    * ``_service.delete_metadata_item(project_id, record_id, key)``.
    """

    def metadata_routes(self, collection, operation=None) -> list[Route]:
        """The routes of ``{collection}/*/metadata[/*]``; ``operation``: their
        fault hook (None: none)."""
        path = f"{collection}/*/metadata"
        return [
            Route("GET", path, self._get_metadata, operation),
            Route("POST", path, self._update_metadata, operation),
            Route("PUT", path, self._replace_metadata, operation),
            Route("GET", f"{path}/*", self._get_metadata_item, operation),
            Route("PUT", f"{path}/*", self._set_metadata_item, operation),
            Route("DELETE", f"{path}/*", self._delete_metadata_item, operation),
        ]

    def _get_metadata(self, ctx, record_id):
        record = self._metadata_owner(ctx, record_id)
        return Response(200, {"metadata": record["metadata"]})

    def _replace_metadata(self, ctx, record_id):
        return self._update_metadata(ctx, record_id, replace=True)

    def _get_metadata_item(self, ctx, record_id, key):
        record = self._metadata_owner(ctx, record_id)
        if key not in record["metadata"]:
            raise self._metadata_not_found(record_id, key)
        return Response(200, {"meta": {key: record["metadata"][key]}})

    def _delete_metadata_item(self, ctx, record_id, key):
        self._service.delete_metadata_item(ctx.project_id, record_id, key)
        return Response(200)
