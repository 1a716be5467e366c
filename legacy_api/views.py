"""Legacy endpoint views: validate, call the domain functions, answer with Agent Zero's bodies."""

from __future__ import annotations

import math
import re
import sys
import time
from typing import Any

from flask import Response, request

from bridge import BridgeTimeout, send_and_wait
from gateway import attachments, realtime
from gateway.errors import json_response, legacy_error
from gateway.events import new_id
from gateway.expiry import reset_session, terminate_session
from gateway.legacy_log import log_body, project_log
from gateway.runtime import current_runtime
from gateway.sessions import BusUnavailable

from . import bp
from .auth import require_legacy_key
from .body import request_body

DEFAULT_LIFETIME_HOURS = 24
DEFAULT_LOG_LENGTH = 100
DIGITS = re.compile(r"\+?[0-9]+")


def legacy_route(name: str, methods: tuple[str, ...] = ("POST",)):
    """Register a view at `/<name>` and at Agent Zero 1.x's alias `/api/<name>`."""

    def register(view):
        bp.add_url_rule(f"/{name}", name, view, methods=list(methods))
        bp.add_url_rule(f"/api/{name}", f"{name}_alias", view, methods=list(methods))
        return view

    return register


def _lifetime_hours(body: dict) -> float | None:
    value = body.get("lifetime_hours", DEFAULT_LIFETIME_HOURS)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        hours = float(value)
    except OverflowError:  # an integer beyond any float is still a number: as long (or short) as can be
        return math.inf if value > 0 else -math.inf
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN / Infinity literals
    return hours


def _expires_at(hours: float) -> float | None:
    """When a session used now with this lifetime expires; None for never (beyond any date)."""
    now = time.time()
    expires_at = now + hours * 3600
    if math.isinf(expires_at):
        return None if expires_at > 0 else now
    return expires_at


def _context_id(source: Any) -> str | None:
    value = source.get("context_id")
    return value if isinstance(value, str) and value else None


def _positive_int(value: Any) -> int | None:
    """A positive integer from JSON (not a bool, not a float) or from text such as a query string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and DIGITS.fullmatch(value.strip()):
        digits = value.strip().lstrip("+").lstrip("0") or "0"
        # More digits than int() will parse is still a positive integer: more than any log holds.
        value = int(digits) if len(digits) <= 18 else sys.maxsize
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


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

    saved = attachments.save_attachments(runtime.settings.attachments_dir, context_id, body.get("attachments"))
    # The session exists (and its lifetime slides) from now, so even a call that times out keeps it.
    runtime.store.ensure_session(context_id)
    runtime.store.set_expiry(context_id, _expires_at(lifetime))
    metadata = {key: body[key] for key in ("project_name", "agent_profile") if isinstance(body.get(key), str)}
    try:
        reply = send_and_wait(runtime, session_id=context_id, message=message, metadata=metadata,
                              attachments=[a.reference for a in saved])
    except BusUnavailable:
        return legacy_error(502, "Message queue unavailable")
    except BridgeTimeout:
        return legacy_error(504, "Timed out waiting for agent response")
    return json_response({"context_id": context_id, "response": reply.get("message", "")})


@legacy_route("api_log_get", methods=("GET", "POST"))
@require_legacy_key
def api_log_get():
    source = request.args if request.method == "GET" else request_body()
    context_id = _context_id(source)
    if context_id is None:
        return legacy_error(400, "context_id is required")
    raw_length = source.get("length")
    length = DEFAULT_LOG_LENGTH if raw_length is None else _positive_int(raw_length)
    if length is None:
        return legacy_error(400, "length must be a positive integer")

    runtime = current_runtime()
    session = runtime.store.get_session(context_id)
    if session is None:
        return legacy_error(404, "Context not found")
    projected = project_log(runtime.store.history(context_id))
    return json_response(log_body(context_id, session.log_guid, projected, length))


@legacy_route("api_terminate_chat")
@require_legacy_key
def api_terminate_chat():
    context_id = _context_id(request_body())
    if context_id is None:
        return legacy_error(400, "context_id is required")
    if not terminate_session(current_runtime(), context_id):
        return legacy_error(404, "Chat context not found")
    return json_response({"success": True, "message": "Chat deleted successfully", "context_id": context_id})


@legacy_route("api_reset_chat")
@require_legacy_key
def api_reset_chat():
    context_id = _context_id(request_body())
    if context_id is None:
        return legacy_error(400, "context_id is required")
    if not reset_session(current_runtime(), context_id):
        return legacy_error(404, "Chat context not found")
    return json_response({"success": True, "message": "Chat reset successfully", "context_id": context_id})


@legacy_route("api_files_get")
@require_legacy_key
def api_files_get():
    paths = request_body().get("paths")
    if not paths:
        return legacy_error(400, "paths array is required")
    if not isinstance(paths, list):
        return legacy_error(400, "paths must be an array")
    settings = current_runtime().settings
    return json_response(attachments.read_files(settings.attachments_dir, settings.files_readonly_root, paths))


@legacy_route("realtime_session")
@require_legacy_key
def realtime_session():
    try:
        session = realtime.create_session(current_runtime().settings, request_body())
    except realtime.RealtimeDisabled:
        return json_response({"error": "Realtime speech is not enabled in settings.", "enabled": False})
    except realtime.ProviderKeyMissing:
        # Agent Zero answers this one as plain text; clients compare the words.
        return Response("OpenAI API key is not configured.", status=400, mimetype="text/plain")
    except realtime.EndpointNotAllowed:
        return legacy_error(400, "endpoint not allowed")
    except realtime.ProviderError as exc:
        return Response(exc.body, status=exc.status, content_type=exc.content_type)
    except realtime.ProviderUnavailable:
        return legacy_error(502, "Realtime provider unavailable")
    return json_response({"enabled": True, "session": session})
