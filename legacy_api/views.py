"""Legacy endpoint views: validate, call the bridge, answer with Agent Zero's bodies."""

from __future__ import annotations

import math

from gateway.errors import json_response, legacy_error
from gateway.events import new_id
from gateway.runtime import current_runtime
from gateway.sessions import BusUnavailable

from bridge import BridgeTimeout, send_and_wait

from . import bp
from .auth import require_legacy_key
from .body import request_body

DEFAULT_LIFETIME_HOURS = 24


def legacy_route(name: str, methods: tuple[str, ...] = ("POST",)):
    """Register a view at `/<name>` and at Agent Zero 1.x's alias `/api/<name>`."""

    def register(view):
        bp.add_url_rule(f"/{name}", name, view, methods=list(methods))
        bp.add_url_rule(f"/api/{name}", f"{name}_alias", view, methods=list(methods))
        return view

    return register


def _lifetime_hours(body: dict) -> float | None:
    value = body.get("lifetime_hours", DEFAULT_LIFETIME_HOURS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@legacy_route("api_message")
@require_legacy_key
def api_message():
    body = request_body()
    message = body.get("message")
    if not isinstance(message, str) or not message:
        return legacy_error(400, "Message is required")
    lifetime = _lifetime_hours(body)
    if lifetime is None:
        return legacy_error(400, "lifetime_hours must be a number")

    runtime = current_runtime()
    context_id = body.get("context_id") or ""
    if not isinstance(context_id, str) or (context_id and runtime.store.get_session(context_id) is None):
        return legacy_error(404, "Context not found")
    context_id = context_id or new_id()

    metadata = {key: body[key] for key in ("project_name", "agent_profile") if isinstance(body.get(key), str)}
    try:
        reply = send_and_wait(runtime, session_id=context_id, message=message, metadata=metadata)
    except BusUnavailable:
        return legacy_error(502, "Message queue unavailable")
    except BridgeTimeout:
        return legacy_error(504, "Timed out waiting for agent response")
    return json_response({"context_id": context_id, "response": reply.get("message", "")})
