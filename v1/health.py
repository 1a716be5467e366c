"""`GET /v1/health` (and the hidden `/health`): each component checked in parallel, bounded in time."""

from __future__ import annotations

from typing import Literal

from flask import request
from pydantic import BaseModel, Field

from gateway.errors import json_response
from gateway.health import overall_health
from gateway.openapi import Content, ResponseModel, documented
from gateway.runtime import current_runtime

from . import bp


class ComponentHealth(BaseModel):
    """One component; `backend`, `info` and `detail` appear when they apply."""

    status: Literal["ok", "degraded", "down"]
    backend: str | None = Field(None, description="What serves the role, e.g. `memory`, `kafka`, `external`.")
    info: str | None = Field(None, description="What a passing check reported.")
    detail: str | None = Field(None, description="Why a failing check failed: `<ExceptionType>: <text>`.")
    subscribers: int | None = Field(None, description="`hub` only: open streams and waiting bridge calls "
                                                      "of the answering process.")


class Health(ResponseModel):
    status: Literal["ok", "degraded", "down"]
    mode: str
    components: dict[str, ComponentHealth]
    elapsed_ms: float


class HealthQuery(BaseModel):
    strict: bool = Field(False, description="Answer 503 when the status is `down` (for load balancers).")


@bp.get("/v1/health")
@bp.get("/health")
@documented("Health of the gateway and its components (always 200 unless `strict`)", query=HealthQuery,
            responses={200: Health, 503: Content(Health, "`strict=true` and the status is `down`")})
def health():
    body = overall_health(current_runtime())
    strict = request.args.get("strict", "").lower() in ("1", "true", "yes")
    return json_response(body, 503 if strict and body["status"] == "down" else 200)
