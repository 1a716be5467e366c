"""`POST /v1/session/message` and `POST /v1/session/action`."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from pydantic import BaseModel, Field

from gateway import idempotency
from gateway.auth import current_principal, principal_metadata
from gateway.errors import detail_error, json_response
from gateway.events import new_id
from gateway.openapi import ResponseModel, documented
from gateway.runtime import current_runtime
from gateway.sessions import BusUnavailable, publish_message

from . import bp
from .models import BodyInvalid, SessionAction, SessionMessage, parse_body

ACTION_TEMPLATES = {
    "summarize": "Summarize the recent conversation for the operator.",
    "next_steps": "Suggest the next three actionable steps.",
    "status_report": "Provide a short status report of current progress.",
}


class SessionAccepted(ResponseModel):
    """The message was published: its session (given or new) and its event id."""

    session_id: str
    event_id: str


class IdempotencyHeader(BaseModel):
    idempotency_key: str | None = Field(
        None, alias="Idempotency-Key", min_length=1, max_length=idempotency.MAX_KEY_LENGTH,
        description="A retry with the same key and body answers the first response and publishes nothing; "
                    "keys are kept at least 24 h.")


PUBLISH_ANSWERS = {
    200: SessionAccepted,
    409: "A request with this Idempotency-Key is still in progress",
    422: "Idempotency-Key reused with a different request",
    502: "Message queue unavailable",
}


def _publish(*, session_id: str | None, persona_id: str | None, message: str,
             attachments: list[str], metadata: dict[str, Any]) -> Response:
    """Publish a user message (a new session when none is named) and answer as the spec says."""
    session_id = session_id or new_id()
    # The caller's tenant/subject/issuer/scope, for the keys the client did not send itself.
    metadata = {**principal_metadata(current_principal()), **metadata}
    try:
        event = publish_message(current_runtime(), session_id=session_id, persona_id=persona_id,
                                message=message, attachments=attachments, metadata=metadata)
    except BusUnavailable:
        return detail_error(502, "Message queue unavailable")
    return json_response({"session_id": session_id, "event_id": event["event_id"]})


def _idempotent(scope: str, raw_body: Any, handle):
    """Run `handle()` at most once per `Idempotency-Key` (when the client sent one)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return handle()
    if len(key) > idempotency.MAX_KEY_LENGTH or not key:
        raise BodyInvalid([{"loc": ["header", "idempotency-key"],
                            "msg": f"String should have between 1 and {idempotency.MAX_KEY_LENGTH} characters",
                            "type": "string_too_long" if key else "string_too_short"}])
    runtime = current_runtime()
    # Keys are the client's own: two callers choosing the same key must not see each other's answers.
    scope = f"{scope}:{current_principal().subject or ''}"
    claim = idempotency.claim(runtime.cache, scope, key, raw_body)
    if claim.state == "mismatch":
        return detail_error(422, "Idempotency-Key reused with a different request")
    if claim.state == "in_flight":
        return detail_error(409, "A request with this Idempotency-Key is still in progress")
    if claim.state == "replay":
        return json_response(claim.response)
    try:
        response = handle()
    except BaseException:
        idempotency.release(runtime.cache, scope, key)
        raise
    if response.status_code == 200:
        idempotency.complete(runtime.cache, scope, key, raw_body, response.get_json(),
                             runtime.settings.idempotency_ttl_seconds)
    else:
        idempotency.release(runtime.cache, scope, key)
    return response


@bp.post("/v1/session/message")
@documented("Send a user message to a session (a new one when `session_id` is left out)",
            body=SessionMessage, headers=IdempotencyHeader, responses=PUBLISH_ANSWERS)
def session_message():
    body, raw = parse_body(SessionMessage)
    return _idempotent("session.message", raw, lambda: _publish(
        session_id=body.session_id, persona_id=body.persona_id, message=body.message,
        attachments=body.attachments, metadata=body.metadata))


@bp.post("/v1/session/action")
@documented("Send a quick action to a session",
            description="`action` is one of " + ", ".join(f'`{name}` ("{text}")' for name, text in
                                                        ACTION_TEMPLATES.items())
            + "; it is published as a user message with that text.",
            body=SessionAction, headers=IdempotencyHeader, responses={**PUBLISH_ANSWERS, 400: "Unknown action"})
def session_action():
    body, raw = parse_body(SessionAction)
    template = ACTION_TEMPLATES.get(body.action)
    if template is None:
        return detail_error(400, "Unknown action")
    metadata = {**body.metadata, "source": "quick_action", "action": body.action}
    return _idempotent("session.action", raw, lambda: _publish(
        session_id=body.session_id, persona_id=body.persona_id, message=template,
        attachments=[], metadata=metadata))
