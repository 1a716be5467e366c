"""Reading a legacy request's input the way Agent Zero did."""

from __future__ import annotations

from typing import Any

from flask import g, request


def request_body() -> dict[str, Any]:
    """The JSON object body; anything else (not JSON, broken JSON, not an object) reads as `{}`."""
    if "legacy_body" not in g:
        body = request.get_json(silent=True) if request.is_json else None
        g.legacy_body = body if isinstance(body, dict) else {}
    return g.legacy_body
