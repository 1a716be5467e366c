"""Brokering a realtime speech session with an OpenAI-compatible provider (`/realtime_session`).

The gateway POSTs `{model, voice, modalities}` with the provider key as a bearer token and hands the
provider's session JSON back. The key only ever goes to the configured endpoint or to one on
REALTIME_ENDPOINT_ALLOWLIST (exact match), over http(s), and redirects are not followed (a redirect
would carry the key elsewhere). Caller fields of the wrong type fall back to the settings' defaults.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping

from .settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MODALITIES = ["audio", "text"]


class RealtimeDisabled(Exception):
    """REALTIME_ENABLED is off."""


class ProviderKeyMissing(Exception):
    """No provider key is configured."""


class EndpointNotAllowed(Exception):
    """The caller named an endpoint that is not on the allow-list."""


class ProviderUnavailable(Exception):
    """The provider could not be reached, or answered something that is not a session."""


class ProviderError(Exception):
    """The provider answered an error; the caller gets its status and body as they were."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        super().__init__(f"provider answered {status}")
        self.status = status
        self.body = body
        self.content_type = content_type


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx answer


def _string(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value.strip() else default


def session_request(settings: Settings, body: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON the provider gets: the caller's model, voice and modalities, or the defaults."""
    modalities = body.get("modalities")
    if not (isinstance(modalities, list) and modalities and all(isinstance(m, str) for m in modalities)):
        modalities = list(DEFAULT_MODALITIES)
    return {"model": _string(body.get("model"), settings.realtime_model),
            "voice": _string(body.get("voice"), settings.realtime_voice),
            "modalities": modalities}


def choose_endpoint(settings: Settings, requested: Any) -> str:
    """The configured endpoint, or the caller's when it is on the allow-list."""
    if requested is None or requested == "":
        return settings.realtime_endpoint
    if isinstance(requested, str) and (requested == settings.realtime_endpoint
                                       or requested in settings.realtime_endpoint_allowlist):
        return requested
    raise EndpointNotAllowed(requested)


def post_session(endpoint: str, api_key: str, payload: Mapping[str, Any], timeout: float) -> Any:
    """POST the session request; return the provider's JSON or raise ProviderError/ProviderUnavailable."""
    if urllib.parse.urlsplit(endpoint).scheme not in ("http", "https"):
        raise ProviderUnavailable(f"not an http(s) endpoint: {endpoint!r}")
    request = urllib.request.Request(
        endpoint, data=json.dumps(payload).encode(), method="POST",
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                 "Accept": "application/json"})
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        if exc.code < 400:  # a redirect we will not follow: nothing usable came back
            raise ProviderUnavailable(f"provider redirected ({exc.code})") from None
        raise ProviderError(exc.code, raw, exc.headers.get("Content-Type") or "application/json") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise ProviderUnavailable(f"{type(exc).__name__} talking to {endpoint}") from None
    if not 200 <= status < 300:
        raise ProviderUnavailable(f"unexpected provider status {status}")
    try:
        return json.loads(raw)
    except ValueError:
        raise ProviderUnavailable("provider answered something that is not JSON") from None


def create_session(settings: Settings, body: Mapping[str, Any]) -> Any:
    """Check the settings and the caller's endpoint, then ask the provider for a session."""
    if not settings.realtime_enabled:
        raise RealtimeDisabled()
    api_key = settings.realtime_api_key.strip()
    if not api_key:
        raise ProviderKeyMissing()
    endpoint = choose_endpoint(settings, body.get("endpoint"))
    try:
        return post_session(endpoint, api_key, session_request(settings, body),
                            settings.realtime_timeout_seconds)
    except ProviderUnavailable as exc:
        log.warning("realtime provider unavailable: %s", exc)
        raise
