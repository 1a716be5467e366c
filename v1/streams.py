"""A session's outbound events over Server-Sent Events and WebSocket, with resume."""

from __future__ import annotations

import json
import logging

from flask import Response, request, stream_with_context
from simple_websocket import ConnectionClosed

from gateway.bus import BusUnavailable
from gateway.errors import detail_error
from gateway.events import event_type
from gateway.extensions import sock
from gateway.runtime import current_runtime
from gateway.streams import StreamItem, parse_cursor, session_stream

from . import bp

log = logging.getLogger(__name__)

# How often a WebSocket handler wakes to notice a client that went away.
WS_WAKE_SECONDS = 1.0


def _sse_frame(item: StreamItem) -> str:
    if item.kind == "heartbeat":
        return ": ping\n\n"
    if item.kind == "reset":
        return f"event: reset\ndata: {json.dumps({'reason': item.reason})}\n\n"
    return f"id: {item.id}\nevent: {event_type(item.event)}\ndata: {json.dumps(item.event)}\n\n"


@bp.get("/v1/session/<path:session_id>/events")
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
