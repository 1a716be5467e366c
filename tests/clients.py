"""Client-side helpers for the end-to-end tests: plain HTTP, an SSE client library, JSON decoding."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import requests
import sseclient

LEGACY_KEY = "test-legacy-key"


def legacy(base: str, path: str, body: Any = None, key: str | None = LEGACY_KEY, **kwargs) -> requests.Response:
    headers = {"X-API-KEY": key} if key else {}
    return requests.post(f"{base}{path}", json=body, headers=headers, timeout=30, **kwargs)


def v1_message(base: str, message: str, session_id: str | None = None, **fields) -> dict[str, Any]:
    body = {"message": message, **fields}
    if session_id:
        body["session_id"] = session_id
    response = requests.post(f"{base}/v1/session/message", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: dict[str, Any]


@contextmanager
def sse(base: str, session_id: str, *, last_event_id: str | None = None, params: dict | None = None,
        read_timeout: float = 10.0) -> Iterator[Iterator[SseEvent]]:
    """Open a session's event stream with the sseclient library; yield an iterator of its events."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    response = requests.get(f"{base}/v1/session/{session_id}/events", headers=headers, params=params,
                            stream=True, timeout=(5, read_timeout))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    client = sseclient.SSEClient(response)

    def events() -> Iterator[SseEvent]:
        for event in client.events():
            yield SseEvent(event.id, event.event, json.loads(event.data))

    try:
        yield events()
    finally:
        response.close()


def until_final(events: Iterator[SseEvent], finals: int = 1) -> list[SseEvent]:
    """Read events until `finals` turn-completing events were seen; return all read."""
    seen: list[SseEvent] = []
    for event in events:
        seen.append(event)
        if event.event == "assistant.final":
            finals -= 1
            if finals == 0:
                return seen
    raise AssertionError(f"stream ended before the final event; got {seen}")
