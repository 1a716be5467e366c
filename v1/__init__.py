"""The /v1 surface of the SomaAgent01 gateway (spec/v1-api.md)."""

from flask import Blueprint

bp = Blueprint("v1", __name__)

from gateway.errors import validation_errors  # noqa: E402

from . import health, sessions, streams  # noqa: E402,F401  (routes register on import)
from .models import BodyInvalid  # noqa: E402

bp.register_error_handler(BodyInvalid, lambda exc: validation_errors(exc.errors))
