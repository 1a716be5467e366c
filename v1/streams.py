"""A session's outbound events over Server-Sent Events and WebSocket, with resume."""

from __future__ import annotations

import json
import logging

from typing import Literal

from flask import Response, request, stream_with_context
from pydantic import BaseModel, Field
from simple_websocket import ConnectionClosed

from gateway.bus import BusUnavailable
from gateway.errors import detail_error
from gateway.events import event_type
from gateway.extensions import sock
from gateway.openapi import Content, documented
from gateway.runtime import current_runtime
from gateway.streams import StreamItem, parse_cursor, session_stream

from . import bp

log = logging.getLogger(__name__)

# How often a WebSocket handler wakes to notice a client that went away.
WS_WAKE_SECONDS = 1.0


class StreamQuery(BaseModel):
    last_event_id: str | None = Field(None, description="Resume after this stream position (first connect).")
    from_: Literal["start"] | None = Field(None, alias="from",
                                           description="`start`: replay the session's retained history first.")


class ResumeHeader(BaseModel):
    last_event_id: str | None = Field(None, alias="Last-Event-ID",
                                      description="Resume after this stream position (sent by EventSource).")


SSE_DESCRIPTION = (
    "Server-Sent Events of the session's `conversation.outbound` events. Each frame: `id:` a position, "
    "increasing within the session; `event:` the event's `type`, else `assistant.stream` / "
    "`assistant.final` from `metadata.status`, else `message`; `data:` the event JSON. `retry:` is sent "
    "once at the start, a `: ping` comment at least every heartbeat. A resume position no longer retained "
    "gives one `event: reset` frame before the stream continues (the client must re-sync).")
WS_DESCRIPTION = (
    "WebSocket (not an OpenAPI operation): the same events as JSON text messages, each with `stream_id`, "
    "the position to pass back as `?last_event_id=` on reconnect; `{\"type\": \"reset\", ...}` when that "
    "position is no longer retained. The server pings the client; an internal failure closes with 1011.")


def _sse_frame(item: StreamItem) -> str:
    if item.kind == "heartbeat":
        return ": ping\n\n"
    if item.kind == "reset":
        return f"event: reset\ndata: {json.dumps({'reason': item.reason})}\n\n"
    return f"id: {item.id}\nevent: {event_type(item.event)}\ndata: {json.dumps(item.event)}\n\n"


@bp.get("/v1/session/<path:session_id>/events")
@documented("A session's outbound events as Server-Sent Events, with resume", description=SSE_DESCRIPTION,
            query=StreamQuery, headers=ResumeHeader,
            responses={200: Content({"type": "string"}, "The event stream", "text/event-stream"),
                       502: "Message queue unavailable"})
def session_events(session_id: str):
    runtime = current_runtime()
    raw_cursor = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    after, malformed = parse_cursor(raw_cursor)
    try:
        items = session_stream(runtime, session_id, after=after, malformed_cursor=malformed,
                               from_start=request.args.get("from") == "start",
                               heartbeat=runtime.settings.sse_heartbeat_seconds)
    except BusUnavailable:
        return detail_error(502, "Message queue unavailable")

    def frames():
        # Closing `items` (on a failed write, gunicorn closes this generator) releases the subscription.
        try:
            yield f"retry: {runtime.settings.sse_retry_ms}\n\n"
            for item in items:
                yield _sse_frame(item)
        finally:
            items.close()

    return Response(stream_with_context(frames()), mimetype="text/event-stream", headers={
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@sock.route("/v1/session/<path:session_id>/stream", bp=bp)
@documented("A session's outbound events over WebSocket, with resume", description=WS_DESCRIPTION,
            query=StreamQuery)
def session_ws(ws, session_id: str):
    runtime = current_runtime()
    after, malformed = parse_cursor(request.args.get("last_event_id"))
    try:
        items = session_stream(runtime, session_id, after=after, malformed_cursor=malformed,
                               from_start=request.args.get("from") == "start",
                               heartbeat=min(WS_WAKE_SECONDS, runtime.settings.sse_heartbeat_seconds))
    except BusUnavailable:
        ws.close(reason=1011, message="message queue unavailable")
        return
    try:
        for item in items:
            if not ws.connected:
                break
            if item.kind == "event":
                # The event verbatim plus its stream position, which a reconnect passes back
                # as `?last_event_id=` (WebSocket has no frame ids of its own).
                ws.send(json.dumps({**item.event, "stream_id": str(item.id)}))
            elif item.kind == "reset":
                ws.send(json.dumps({"type": "reset", "reason": item.reason}))
    except ConnectionClosed:
        pass
    except Exception:
        log.exception("websocket stream of session %s failed", session_id)
        ws.close(reason=1011, message="internal error")
    finally:
        items.close()
