"""Event envelopes of `spec/events.md`: building and validating what the gateway publishes, and
reading what workers send back (two worker generations)."""

from __future__ import annotations

import uuid
from typing import Any, Iterable, Mapping

import jsonschema

INBOUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event_id", "session_id", "role", "message", "metadata"],
    "properties": {
        "event_id": {"type": "string", "minLength": 1},
        "session_id": {"type": "string", "minLength": 1},
        "persona_id": {"type": ["string", "null"]},
        "role": {"enum": ["user", "assistant", "system"]},
        "message": {"type": "string"},
        "attachments": {"type": "array", "items": {"type": "string"}},
        "metadata": {"type": "object"},
        "type": {"type": "string"},
        "version": {"type": "string"},
        "trace_context": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_inbound_validator = jsonschema.Draft202012Validator(INBOUND_SCHEMA)

CONTROL_RESET = "session.reset"
CONTROL_TERMINATE = "session.terminate"

STATUS_STREAMING = "streaming"
STATUS_COMPLETED = "completed"
TYPE_STREAM = "assistant.stream"
TYPE_FINAL = "assistant.final"


class InvalidEnvelope(ValueError):
    """The gateway built an event the platform's schema rejects (a bug, never the client's fault)."""


def new_id() -> str:
    return str(uuid.uuid4())


def inbound_event(*, session_id: str, message: str, persona_id: str | None = None,
                  attachments: Iterable[str] = (), metadata: Mapping[str, Any] | None = None,
                  role: str = "user", type: str | None = None,
                  trace_context: Mapping[str, str] | None = None,
                  event_id: str | None = None) -> dict[str, Any]:
    """Build and validate one `conversation.inbound` envelope (with a fresh `event_id` unless given)."""
    event: dict[str, Any] = {
        "event_id": event_id or new_id(),
        "session_id": session_id,
        "persona_id": persona_id,
        "role": role,
        "message": message,
        "attachments": list(attachments),
        "metadata": dict(metadata or {}),
    }
    if type is not None:
        event["type"] = type
    if trace_context:
        event["trace_context"] = dict(trace_context)
    validate_inbound(event)
    return event


def control_event(*, session_id: str, control: str, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A `session.reset` / `session.terminate` control event for workers (events.md)."""
    return inbound_event(session_id=session_id, message="", role="system", type=control,
                         metadata={"source": "legacy_api", **(metadata or {})})


def validate_inbound(event: Mapping[str, Any]) -> None:
    error = jsonschema.exceptions.best_match(_inbound_validator.iter_errors(event))
    if error is not None:
        raise InvalidEnvelope(f"inbound event rejected by schema: {error.message}")


def wire_headers(event: Mapping[str, Any], tenant: str | None = None) -> list[tuple[str, bytes]]:
    """The Kafka headers of events.md, so consumers can route without parsing the value."""
    headers = [
        ("event_id", str(event.get("event_id", "")).encode()),
        ("session_id", str(event.get("session_id", "")).encode()),
        ("event_type", event_type(event).encode()),
    ]
    if tenant:
        headers.append(("tenant_id", tenant.encode()))
    return headers


def _metadata(event: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = event.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def event_type(event: Mapping[str, Any]) -> str:
    """The event's name on streams: its `type`, else derived from `metadata.status`, else `message`."""
    declared = event.get("type")
    if isinstance(declared, str) and declared:
        return declared
    status = _metadata(event).get("status")
    if status == STATUS_STREAMING:
        return TYPE_STREAM
    if status == STATUS_COMPLETED:
        return TYPE_FINAL
    return "message"


def completes_turn(event: Mapping[str, Any]) -> bool:
    """True for the event that ends an assistant turn, in either worker generation."""
    return event.get("type") == TYPE_FINAL or _metadata(event).get("status") == STATUS_COMPLETED


def answers_request(event: Mapping[str, Any], request_event_id: str) -> bool:
    """True when `event` completes the turn started by the inbound event `request_event_id`.

    A worker that echoes `metadata.request_event_id` must echo ours; one that does not echo it is
    taken at its word that this is the next completed turn of the session.
    """
    if not completes_turn(event):
        return False
    echoed = _metadata(event).get("request_event_id")
    return echoed is None or echoed == request_event_id
