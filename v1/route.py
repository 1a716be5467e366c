"""`POST /v1/route`: pick the candidate model with the best recorded score."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from gateway.errors import detail_error, json_response
from gateway.openapi import ResponseModel, documented
from gateway.profiles import NoCandidates, choose_route
from gateway.runtime import current_runtime

from . import bp
from .models import parse_body


class RouteRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    candidates: list[str]
    tenant: str | None = None
    persona: str | None = None
    # Scores of this deployment mode only; omitted: each model's newest window in any mode.
    deployment_mode: str | None = None


class RouteChoice(ResponseModel):
    """The chosen candidate and its recorded score (null: no score, the first candidate)."""

    chosen: str
    score: float | None


@bp.post("/v1/route")
@documented("Choose the candidate model with the best recorded score", body=RouteRequest,
            responses={200: RouteChoice, 400: "No candidates supplied", 503: "Model profile store unavailable"})
def route():
    body, _ = parse_body(RouteRequest)
    try:
        chosen, score = choose_route(current_runtime().profiles, body.candidates,
                                     deployment_mode=body.deployment_mode)
    except NoCandidates:
        return detail_error(400, "No candidates supplied")
    return json_response({"chosen": chosen, "score": score})
