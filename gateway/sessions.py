"""Publishing into a session: the one path every surface (/v1, quick actions, the bridge) uses."""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Mapping

from .bus import BusUnavailable, Record
from .events import inbound_event, new_id, wire_headers
from .runtime import Runtime

log = logging.getLogger(__name__)

__all__ = ["BusUnavailable", "publish_message", "publish_event", "session_cache_key"]


def session_cache_key(session_id: str) -> str:
    return f"session:{session_id}:meta"


def publish_event(runtime: Runtime, event: Mapping[str, Any], *, tenant: str | None = None) -> Record:
    """Publish one validated inbound envelope and wait for the bus to acknowledge it."""
    return runtime.bus.publish(runtime.settings.conversation_inbound, event, key=event["session_id"],
                               headers=wire_headers(event, tenant))


def publish_message(runtime: Runtime, *, session_id: str, message: str, persona_id: str | None = None,
                    attachments: Iterable[str] = (), metadata: Mapping[str, Any] | None = None,
                    event_id: str | None = None) -> dict[str, Any]:
    """Publish a user message to a session and record it; return the published envelope.

    The session exists before the publish (so the recorder keeps a reply that comes back at once);
    the user event is recorded only after the bus acknowledged it, so history never shows a message
    that was not sent. Raises `BusUnavailable` when the bus does not acknowledge.
    """
    event_id = event_id or new_id()
    # Every message names itself in its metadata; workers echo metadata, so each reply says which
    # request it answers (the bridge must not take the reply to an earlier /v1 message for its own).
    metadata = {**(metadata or {}), "request_event_id": event_id}
    event = inbound_event(session_id=session_id, message=message, persona_id=persona_id,
                          attachments=attachments, metadata=metadata, event_id=event_id)
    created_at = time.time()
    runtime.store.ensure_session(session_id, persona_id=persona_id)
    tenant = (metadata or {}).get("tenant")
    publish_event(runtime, event, tenant=tenant if isinstance(tenant, str) else None)
    runtime.store.record_event(session_id, event, direction="inbound", timestamp=created_at)
    try:
        runtime.cache.set_json(session_cache_key(session_id),
                               {"persona_id": persona_id, "metadata": dict(metadata or {})},
                               runtime.settings.session_cache_ttl_seconds)
    except Exception:  # the cache is an optimisation; the message is already safely published
        log.warning("could not refresh the session cache of %s", session_id, exc_info=True)
    return event
