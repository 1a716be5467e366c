"""`/v1/requeue`: tool requests parked by policy; list (any caller), resolve and delete (admin)."""

from __future__ import annotations

from typing import Any, Literal

from flask import request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway import requeue
from gateway.auth import require_admin
from gateway.errors import detail_error, json_response
from gateway.openapi import HTTPValidationError, ResponseModel, documented
from gateway.runtime import current_runtime

from . import bp

NOT_FOUND = "requeue item not found"
# FastAPI read `publish` as a pydantic bool (true/false, 1/0, yes/no, on/off, t/f, y/n).
QUERY_BOOL = TypeAdapter(bool)
UNAVAILABLE = "Requeue store unavailable"


class RequeueEntry(BaseModel):
    """A parked tool request: the fields the tool executor stored, plus `timestamp` and `requeue_id`."""

    model_config = ConfigDict(extra="allow")

    requeue_id: str
    timestamp: float | None = Field(None, description="When it was parked (epoch seconds).")
    event_id: str | None = None
    session_id: str | None = None
    persona_id: str | None = None
    tool_name: str | None = None
    args: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class RequeueResolved(ResponseModel):
    status: Literal["resolved"]


class RequeueDeleted(ResponseModel):
    status: Literal["deleted"]


class ResolveQuery(BaseModel):
    publish: bool = Field(True, description="Publish the stored request to `tool.requests` (with "
                                            "`metadata.requeue_override = true`) before removing it.")


@bp.errorhandler(requeue.RequeueUnavailable)
def _requeue_unavailable(exc):
    return detail_error(503, UNAVAILABLE)


@bp.get("/v1/requeue")
@documented("List the tool requests parked by policy, newest first",
            responses={200: list[RequeueEntry], 503: UNAVAILABLE})
def list_requeue():
    return json_response(current_runtime().requeue.entries())


@bp.post("/v1/requeue/<requeue_id>/resolve")
@documented("Resolve a parked request (republish it, then remove it)", query=ResolveQuery,
            responses={200: RequeueResolved, 404: NOT_FOUND, 409: "requeue item is corrupt; delete it",
                       422: HTTPValidationError, 502: "Message queue unavailable", 503: UNAVAILABLE},
            admin=True)
@require_admin
def resolve_requeue(requeue_id: str):
    try:
        publish = QUERY_BOOL.validate_python(request.args.get("publish", "true"))
    except ValidationError as exc:
        return detail_error(422, [{"loc": ["query", "publish"], "msg": e["msg"], "type": e["type"]}
                                  for e in exc.errors()])
    runtime = current_runtime()
    try:
        requeue.resolve(runtime.requeue, runtime.bus, runtime.settings.tool_requests_topic, requeue_id,
                        publish=publish)
    except requeue.RequeueNotFound:
        return detail_error(404, NOT_FOUND)
    except requeue.RequeueEntryCorrupt:
        return detail_error(409, "requeue item is corrupt; delete it")
    except requeue.BusUnavailable:
        return detail_error(502, "Message queue unavailable")
    return json_response({"status": "resolved"})


@bp.delete("/v1/requeue/<requeue_id>")
@documented("Delete a parked request", responses={200: RequeueDeleted, 404: NOT_FOUND, 503: UNAVAILABLE},
            admin=True)
@require_admin
def delete_requeue(requeue_id: str):
    if not current_runtime().requeue.remove(requeue_id):
        return detail_error(404, NOT_FOUND)
    return json_response({"status": "deleted"})
