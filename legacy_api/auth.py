"""Legacy API-key authentication, as Agent Zero's clients expect it."""

from __future__ import annotations

import functools
import hmac
from typing import Any, Callable

from flask import Response, request

from gateway.auth import key_service
from gateway.runtime import current_runtime

from .body import request_body


def _text_401(text: str) -> Response:
    # Agent Zero answers these as plain text bodies, not JSON; clients compare the words.
    return Response(text, status=401)


def _presented_key(body: dict[str, Any]) -> str | None:
    header = request.headers.get("X-API-KEY")
    if header:
        return header
    key = body.get("api_key")
    if key is None or key == "":
        return None
    return key if isinstance(key, str) else ""


def key_is_valid(key: str) -> bool:
    """The configured legacy key (compared in constant time) or any active, unrevoked /v1 API key."""
    configured = current_runtime().settings.legacy_api_key
    if configured and hmac.compare_digest(key.encode(), configured.encode()):
        return True
    return key_service().verify(key) is not None


def auth_required() -> bool:
    """Open only while no legacy key is set, no /v1 key was ever issued and auth is not required."""
    settings = current_runtime().settings
    return bool(settings.legacy_api_key) or settings.gateway_require_auth or key_service().any_issued()


def require_legacy_key(view: Callable[..., Any]) -> Callable[..., Any]:
    """401 `API key required` without a key, 401 `Invalid API key` with a wrong one."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if auth_required():
            key = _presented_key(request_body())
            if key is None:
                return _text_401("API key required")
            if not key_is_valid(key):
                return _text_401("Invalid API key")
        return view(*args, **kwargs)

    return wrapper
