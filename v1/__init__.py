"""The /v1 surface of the SomaAgent01 gateway (spec/v1-api.md)."""

from flask import Blueprint

bp = Blueprint("v1", __name__)

from gateway import auth  # noqa: E402
from gateway.errors import validation_errors  # noqa: E402

from . import capsules, health, keys, openapi_routes, profiles, requeue, route, sessions, streams  # noqa: E402,F401  (routes register on import)
from .models import BodyInvalid  # noqa: E402

bp.register_error_handler(BodyInvalid, lambda exc: validation_errors(exc.errors))
# The authenticator is built when the app registers /v1; every /v1 request (but health, the OpenAPI
# documents and CORS preflights) is authenticated before its view runs.
bp.record_once(lambda state: auth.init_app(state.app))
bp.before_request(auth.authenticate_request)
