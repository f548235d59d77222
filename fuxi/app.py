"""The Flask application factory: no state at import time, the service is injected."""

import logging

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from fuxi import admin
from fuxi.api import blueprint, reply
from fuxi.errors import error_response

LOG = logging.getLogger(__name__)


def create_app(service) -> Flask:
    app = Flask("fuxi")
    # Plugin calls are POSTs only: no automatic OPTIONS answer (an empty 200 that
    # is not the protocol's JSON); OPTIONS gets the 405 of any other method.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.extensions["fuxi.volume_service"] = service
    app.register_blueprint(blueprint)
    app.register_blueprint(admin.blueprint)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if exc.code == 404:
            message = "unknown call; fuxi serves /Plugin.Activate, /VolumeDriver.* and /fuxi/pool/*"
        elif exc.code == 405:
            message = "plugin calls must be POST requests"
        else:
            message = exc.description or exc.name
        return reply({"Err": message}, exc.code or 500)

    @app.errorhandler(Exception)
    def any_error(exc):
        body, status = error_response(exc)
        LOG.warning("%s answered %s: %s", request.path, status, body["Err"])
        return reply(body, status)

    return app
