"""`GET /v1/health` (and the hidden `/health`): each component checked in parallel, bounded in time."""

from __future__ import annotations

from flask import request

from gateway.errors import json_response
from gateway.health import overall_health
from gateway.runtime import current_runtime

from . import bp


@bp.get("/v1/health")
@bp.get("/health")
def health():
    body = overall_health(current_runtime())
    strict = request.args.get("strict", "").lower() in ("1", "true", "yes")
    return json_response(body, 503 if strict and body["status"] == "down" else 200)
