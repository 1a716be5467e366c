"""`GET /openapi.json` and `GET /v1/openapi.json`: the OpenAPI document of /v1 (open to everyone)."""

from __future__ import annotations

from flask import current_app

from gateway.errors import json_response
from gateway.openapi import app_document, documented
from gateway.runtime import current_runtime

from . import bp


@bp.get("/openapi.json")
@bp.get("/v1/openapi.json")
@documented("The OpenAPI document of this API", responses={200: {"type": "object", "description": "An OpenAPI 3.1 document"}})
def openapi_document():
    return json_response(app_document(current_app, current_runtime().settings.gateway_api_version))
