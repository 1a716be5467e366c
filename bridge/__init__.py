"""The bridge: a legacy call becomes a `conversation.inbound` event, and waits for its reply.

The waiter subscribes to the session before publishing, so a fast reply cannot pass unseen, and
waits cooperatively (a gevent worker keeps serving other requests meanwhile).
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

from gateway.events import answers_request, completes_turn, new_id
from gateway.recorder import record_outbound
from gateway.runtime import Runtime
from gateway.sessions import publish_message

__all__ = ["BridgeTimeout", "send_and_wait", "answers_request"]


class BridgeTimeout(Exception):
    """No reply to the request within the bridge timeout (the message itself was published)."""


def send_and_wait(runtime: Runtime, *, session_id: str, message: str, attachments: Iterable[str] = (),
                  metadata: Mapping[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Publish a legacy user message and return the outbound event that completes its turn.

    Raises `gateway.sessions.BusUnavailable` when publishing fails, `BridgeTimeout` when no reply comes.
    """
    timeout = runtime.settings.bridge_timeout_seconds if timeout is None else timeout
    event_id = new_id()
    metadata = {**(metadata or {}), "source": "legacy_api"}
    with runtime.hub.subscribe(session_id, accept=completes_turn) as waiter:
        publish_message(runtime, session_id=session_id, message=message, attachments=attachments,
                        metadata=metadata, event_id=event_id)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            record = waiter.get(remaining)
            if record is not None and answers_request(record.value, event_id):
                # Store the reply now (idempotent with the recorder) so the legacy log shows it
                # as soon as the client has it.
                record_outbound(runtime.store, record)
                return record.value
    raise BridgeTimeout(f"no reply to {event_id} within {timeout:g}s")
