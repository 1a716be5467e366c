"""The app factory: one Flask app serving the legacy surface, /v1 and the bridge between them."""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from .cli import scores_cli
from .errors import detail_error, legacy_error
from .extensions import cors, sock
from .runtime import EXTENSION, Runtime
from .settings import load_settings

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` overrides the environment, by setting name (tests pass theirs here)."""
    settings = load_settings({**os.environ, **(config or {})})
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": settings.ws_ping_seconds or None}
    app.extensions[EXTENSION] = Runtime.from_settings(settings)

    sock.init_app(app)
    cors.init_app(app, resources={r"/v1/*": {}, r"/health": {}, r"/openapi.json": {}},
                  origins=list(settings.gateway_cors_origins), methods=list(settings.gateway_cors_methods),
                  allow_headers=list(settings.gateway_cors_headers),
                  supports_credentials=settings.gateway_cors_credentials,
                  send_wildcard="*" in settings.gateway_cors_origins,
                  expose_headers=["X-API-Version"])

    from legacy_api import bp as legacy_bp
    from v1 import bp as v1_bp

    app.register_blueprint(v1_bp)
    app.register_blueprint(legacy_bp)
    app.cli.add_command(scores_cli)  # flask --app wsgi scores load FILE.json

    @app.before_request
    def start_runtime() -> None:
        # Background parts start in the serving process, after gunicorn forked it.
        app.extensions[EXTENSION].start()

    @app.after_request
    def add_version_header(response):
        response.headers["X-API-Version"] = settings.gateway_api_version
        return response

    register_error_handlers(app)
    return app


def _is_legacy_request() -> bool:
    from legacy_api import is_legacy_path

    return is_legacy_path(request.path)


def register_error_handlers(app: Flask) -> None:
    """Errors answer in the dialect of the surface that was called, and never leak a traceback."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = (legacy_error if _is_legacy_request() else detail_error)(exc.code or 500, exc.name)
        if getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _is_legacy_request():
            return legacy_error(500, f"Internal server error: {type(exc).__name__}")
        return detail_error(500, "Internal Server Error")
