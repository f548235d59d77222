"""The Flask application factory: no state at import time, the service is injected."""

from flask import Flask
from werkzeug.exceptions import HTTPException

from fuxi import admin, admin_copies, call_log
from fuxi.api import blueprint, reply
from fuxi.errors import error_response


def create_app(service, metrics=None) -> Flask:
    """The plugin's app on `service`; `metrics` (fuxi.metrics.PluginMetrics), if
    given, counts and times its calls."""
    app = Flask("fuxi")
    # Plugin calls are POSTs only: no automatic OPTIONS answer (an empty 200 that
    # is not the protocol's JSON); OPTIONS gets the 405 of any other method.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.extensions["fuxi.volume_service"] = service
    app.register_blueprint(blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(admin_copies.blueprint)
    # One line per call, each under its own request id (the error's text included).
    call_log.install(app, metrics)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if exc.code == 404:
            message = "unknown call; fuxi serves /Plugin.Activate, /VolumeDriver.* and /fuxi/*"
        elif exc.code == 405:
            message = "plugin calls must be POST requests"
        else:
            message = exc.description or exc.name
        return reply({"Err": message}, exc.code or 500)

    @app.errorhandler(Exception)
    def any_error(exc):
        # The call's line (fuxi.call_log) says the status and the Err.
        body, status = error_response(exc)
        return reply(body, status)

    return app
