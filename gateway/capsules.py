"""A client of the capsule registry that /v1/capsules proxies to.

The upstream is `CAPSULE_REGISTRY_URL` and nothing else: a caller names a capsule id, never a URL,
and an id that could change the upstream path is refused before any request is sent.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import quote

import requests

from .settings import Settings

log = logging.getLogger(__name__)

__all__ = ["CapsuleRegistry", "Download", "InvalidCapsuleId", "RegistryError", "RegistryUnavailable",
           "check_capsule_id"]

# One path segment of plain characters; no dot-segments, no separators, no percent-escapes.
CAPSULE_ID = re.compile(r"[A-Za-z0-9_~+-][A-Za-z0-9._~+-]{0,199}")
# Upstream error texts are passed on to the caller; more than this is cut.
ERROR_TEXT_LIMIT = 64 * 1024
CHUNK_SIZE = 64 * 1024


class InvalidCapsuleId(ValueError):
    """The capsule id could change the upstream path."""


class RegistryUnavailable(Exception):
    """The registry could not be reached, did not answer in time, or answered with something unusable."""


class RegistryError(Exception):
    """The registry answered with a non-2xx status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"capsule registry answered {status}")
        self.status = status
        self.text = text


def check_capsule_id(capsule_id: str) -> str:
    """Return `capsule_id` when it is one safe path segment; raise `InvalidCapsuleId` otherwise."""
    if not CAPSULE_ID.fullmatch(capsule_id) or ".." in capsule_id:
        raise InvalidCapsuleId(capsule_id)
    return capsule_id


@dataclass
class Download:
    """An open upstream download: its headers to pass on and its body, read chunk by chunk."""

    content_type: str
    content_disposition: str | None
    content_length: str | None
    response: requests.Response

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives; the upstream connection is closed when done or abandoned."""
        try:
            yield from self.response.iter_content(CHUNK_SIZE)
        except requests.RequestException as exc:
            # Headers are sent already: ending the body early is the only way left to say it failed.
            log.warning("capsule download broke off: %s", exc)
            raise
        finally:
            self.response.close()


class CapsuleRegistry:
    """Calls to the registry at `base_url`, each bounded by `timeout` seconds per connect and read."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> "CapsuleRegistry":
        return cls(settings.capsule_registry_url, settings.capsule_registry_timeout_seconds)

    def _url(self, *segments: str) -> str:
        # Ids are checked already; quoting is a second guard that keeps each one a single segment.
        return "/".join([self.base_url, "capsules", *(quote(s, safe="") for s in segments)])

    def _send(self, method: str, url: str) -> requests.Response:
        try:
            response = requests.request(method, url, timeout=self.timeout, stream=True,
                                        headers={"Accept-Encoding": "identity"})
        except requests.RequestException as exc:
            log.warning("capsule registry unavailable (%s %s): %s", method, url, exc)
            raise RegistryUnavailable(str(exc)) from exc
        if not 200 <= response.status_code < 300:
            try:
                raise RegistryError(response.status_code, _bounded_text(response))
            finally:
                response.close()
        return response

    def _json(self, method: str, url: str) -> Any:
        response = self._send(method, url)
        try:
            body = response.content
        except requests.RequestException as exc:
            raise RegistryUnavailable(str(exc)) from exc
        finally:
            response.close()
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError:
            log.warning("capsule registry sent invalid JSON for %s %s", method, url)
            raise RegistryUnavailable("invalid JSON from the capsule registry") from None

    def list(self) -> Any:
        """`GET /capsules`: the registry's JSON."""
        return self._json("GET", self._url())

    def install(self, capsule_id: str) -> Any:
        """`POST /capsules/{id}/install`: the registry's JSON (null when it sent no body)."""
        return self._json("POST", self._url(check_capsule_id(capsule_id), "install"))

    def download(self, capsule_id: str) -> Download:
        """`GET /capsules/{id}`, opened for streaming: read it with `Download.chunks()`."""
        response = self._send("GET", self._url(check_capsule_id(capsule_id)))
        headers = response.headers
        # A length is only true of the bytes we pass on when the upstream did not compress them.
        length = None if headers.get("Content-Encoding") else headers.get("Content-Length")
        return Download(headers.get("Content-Type") or "application/octet-stream",
                        headers.get("Content-Disposition"), length, response)


def _bounded_text(response: requests.Response) -> str:
    """The start of an error answer's body as text (the rest is not read)."""
    try:
        data = response.raw.read(ERROR_TEXT_LIMIT, decode_content=True)
    except Exception:  # the status is what matters; an unreadable body becomes empty text
        data = b""
    return data.decode(response.encoding or "utf-8", errors="replace")
