"""The two error dialects: FastAPI's `{"detail": ...}` on /v1 and Agent Zero's `{"error": ...}`."""

from __future__ import annotations

import json
from typing import Any

from flask import Response


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialise with Python's default `json.dumps` (key order kept, `", "`/`": "` separators)."""
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)


def detail_error(status: int, detail: Any, headers: dict[str, str] | None = None) -> Response:
    """A /v1 error as FastAPI shapes it."""
    return json_response({"detail": detail}, status, headers)


def legacy_error(status: int, text: str) -> Response:
    """A legacy handler error, always valid JSON (Agent Zero sometimes was not)."""
    return json_response({"error": text}, status)


def validation_errors(errors: list[dict[str, Any]]) -> Response:
    """422 with FastAPI's list of `{loc, msg, type}`."""
    return detail_error(422, [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors])
