"""The Agent Zero log of a session (`/api_log_get`), projected from its stored events.

A pure projection: `project_log` turns the session's history (inbound user events and outbound
events, in the order they happened) into Agent Zero log items; `log_body` cuts the newest `length`
of them into the response body. How events become items:

- inbound user message (role `user`, no `type`): a `user` item, heading `User message`, kvps
  `{"attachments": [file names]}` (the last path part of each reference string). It opens a turn.
- streaming chunk (`metadata.status == "streaming"` or `type == "assistant.stream"`): not an item of
  its own; it creates, then updates in place, the turn's pending `response` item (the text is
  cumulative, so the latest chunk's text is the content; a chunk with a lower `stream_index` than
  one already applied is ignored).
- completed reply (`metadata.status == "completed"` or `type == "assistant.final"`): finalizes the
  pending `response` item (or adds one), heading `Response`, kvps `source` and `status`. It ends the turn.
- tool event (`type` `tool.start` / `tool.result`, or `role == "tool"`): a `tool` item, heading
  `Tool: <metadata.tool_name>` (or a top-level `tool_name`), content the event's text, kvps
  `{"status": ...}` (`metadata.status`, else `running` for `tool.start` and `completed` otherwise).
  Events with the same `metadata.request_id` update one item in place (start, then result).
- policy denial -> `warning`, heading `Blocked`: `metadata.source == "policy"`, or
  `metadata.status` in BLOCKED_STATUSES, or `type` in BLOCKED_TYPES.
- error -> `error`, heading `Error`: `metadata.status` in ERROR_STATUSES, or `type` in ERROR_TYPES.
  Both answer the open turn (a worker that failed sends nothing more), so they end it; their kvps
  carry `source` and `status` when present.
- anything else (`assistant.thinking`, control events, unknown types) is not shown.

An item keeps its `no` while later events update it. A tool item keeps the `id` and `timestamp` of
the event that created it; a response item has those of its first chunk while it streams and those of
the completed reply once it is finalized. That keeps a finished log stable however its events arrive:
the bridge stores a reply as soon as it has it, and the recorder may store the chunks before it later. `progress_active` is true while the latest user
message has no reply ending its turn; `progress` is then the heading of the latest item, otherwise
`"Waiting for input"`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .events import TYPE_FINAL, TYPE_STREAM, STATUS_STREAMING, completes_turn
from .store import StoredEvent

WAITING = "Waiting for input"

TOOL_TYPES = {"tool.start", "tool.result"}
BLOCKED_TYPES = {"policy.denied", "policy.blocked", "assistant.blocked"}
BLOCKED_STATUSES = {"blocked", "denied", "policy_denied"}
ERROR_TYPES = {"error", "assistant.error", "system.error"}
ERROR_STATUSES = {"error", "failed", "failure"}


@dataclass
class ProjectedLog:
    """Every item of a session's log, and whether a reply is still pending."""

    items: list[dict[str, Any]]
    active: bool

    @property
    def progress(self) -> str:
        if not self.active or not self.items:
            return WAITING
        return self.items[-1]["heading"]


def _metadata(event: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = event.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _file_name(reference: Any) -> str | None:
    if not isinstance(reference, str) or not reference:
        return None
    return reference.replace("\\", "/").rsplit("/", 1)[-1] or None


def _shown(metadata: Mapping[str, Any], status: str | None = None) -> dict[str, Any]:
    """The outbound metadata worth showing in a reply's kvps: `source` and `status`."""
    kvps = {key: metadata[key] for key in ("source", "status") if key in metadata}
    if status is not None and "status" not in kvps:
        kvps["status"] = status
    return kvps


def classify(event: Mapping[str, Any]) -> str | None:
    """What an outbound event is in the log: tool, warning, error, stream, final, or None (hidden)."""
    metadata = _metadata(event)
    declared = event.get("type")
    status = metadata.get("status")
    if declared in TOOL_TYPES or event.get("role") == "tool":
        return "tool"
    if declared in BLOCKED_TYPES or status in BLOCKED_STATUSES or metadata.get("source") == "policy":
        return "warning"
    if declared in ERROR_TYPES or status in ERROR_STATUSES:
        return "error"
    if completes_turn(event):
        return "final"
    if declared == TYPE_STREAM or (not declared and status == STATUS_STREAMING):
        return "stream"
    return None


def _is_user_message(event: Mapping[str, Any]) -> bool:
    return event.get("role") == "user" and not event.get("type")


def _stream_index(event: Mapping[str, Any]) -> int | None:
    index = _metadata(event).get("stream_index")
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def project_log(history: Iterable[StoredEvent]) -> ProjectedLog:
    """Project a session's stored events, in order, into Agent Zero log items."""
    items: list[dict[str, Any]] = []
    active = False
    response: dict[str, Any] | None = None  # the open turn's response item, while it streams
    response_index: int | None = None
    tools: dict[str, dict[str, Any]] = {}  # tool items by request id, to update in place

    def add(stored: StoredEvent, type_: str, heading: str, content: str, kvps: dict) -> dict[str, Any]:
        item = {"no": len(items), "id": stored.event_id, "type": type_, "heading": heading,
                "content": content, "temp": False, "kvps": kvps,
                "timestamp": float(stored.timestamp), "agentno": 0}
        items.append(item)
        return item

    for stored in history:
        event = stored.event
        metadata = _metadata(event)
        if stored.direction == "inbound":
            if _is_user_message(event):
                names = [n for n in map(_file_name, event.get("attachments") or []) if n]
                add(stored, "user", "User message", _text(event.get("message")), {"attachments": names})
                active, response, response_index = True, None, None
            continue

        kind = classify(event)
        if kind == "tool":
            tool_name = metadata.get("tool_name") or event.get("tool_name") or "unknown"
            status = metadata.get("status") or ("running" if event.get("type") == "tool.start" else "completed")
            request_id = metadata.get("request_id")
            item = tools.get(request_id) if isinstance(request_id, str) else None
            if item is None:
                item = add(stored, "tool", f"Tool: {tool_name}", _text(event.get("message")), {"status": status})
                if isinstance(request_id, str):
                    tools[request_id] = item
            else:
                item["content"] = _text(event.get("message")) or item["content"]
                item["kvps"] = {"status": status}
        elif kind in ("warning", "error"):
            type_, heading = ("warning", "Blocked") if kind == "warning" else ("error", "Error")
            add(stored, type_, heading, _text(event.get("message")), _shown(metadata))
            active, response, response_index = False, None, None
        elif kind == "stream":
            index = _stream_index(event)
            if response is None:
                response = add(stored, "response", "Response", _text(event.get("message")),
                               _shown(metadata, "streaming"))
            elif index is None or response_index is None or index >= response_index:
                response["content"] = _text(event.get("message"))
                response["kvps"] = _shown(metadata, "streaming")
            else:
                continue  # an older chunk arriving late: the cumulative text already covers it
            response_index = index if index is not None else response_index
        elif kind == "final":
            status = "completed" if event.get("type") == TYPE_FINAL else None
            if response is None:
                add(stored, "response", "Response", _text(event.get("message")), _shown(metadata, status))
            else:
                response.update(id=stored.event_id, content=_text(event.get("message")),
                                kvps=_shown(metadata, status), timestamp=float(stored.timestamp))
            active, response, response_index = False, None, None
    return ProjectedLog(items, active)


def log_body(context_id: str, guid: str, projected: ProjectedLog, length: int) -> dict[str, Any]:
    """The `/api_log_get` body: the newest `length` items, oldest first, keys in Agent Zero's order."""
    returned = projected.items[-length:] if length > 0 else []
    total = len(projected.items)
    return {
        "context_id": context_id,
        "log": {
            "guid": guid,
            "total_items": total,
            "returned_items": len(returned),
            "start_position": total - len(returned),
            "progress": projected.progress,
            "progress_active": projected.active,
            "items": returned,
        },
    }
