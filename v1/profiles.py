"""`/v1/model-profiles`: list, create or replace (admin), delete (admin)."""

from __future__ import annotations

from typing import Any

from flask import request
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from gateway.auth import require_admin
from gateway.errors import detail_error, json_response
from gateway.openapi import NULL_BODY, ResponseModel, documented
from gateway.profiles import DEFAULT_TEMPERATURE, ModelProfile, ProfilesUnavailable
from gateway.runtime import current_runtime

from . import bp
from .models import parse_body

# A role or mode is a path segment of PUT/DELETE, so it cannot hold a "/".
SEGMENT = r"^[^/]+$"


class ModelProfileBody(BaseModel):
    """A profile as POST takes it."""

    model_config = ConfigDict(extra="ignore")

    role: str = Field(min_length=1, pattern=SEGMENT)
    deployment_mode: str = Field(min_length=1, pattern=SEGMENT)
    model: str = Field(min_length=1)
    base_url: str | None = None
    temperature: FiniteFloat = DEFAULT_TEMPERATURE
    kwargs: dict[str, Any] | None = None


class ModelProfileUpdate(ModelProfileBody):
    """A profile as PUT takes it: role and mode come from the path and may be left out of the body."""

    role: str | None = None
    deployment_mode: str | None = None


class ModelProfileInfo(ResponseModel):
    """A stored profile."""

    role: str
    deployment_mode: str
    model: str
    base_url: str | None
    temperature: float
    kwargs: dict[str, Any] | None


class ProfilesQuery(BaseModel):
    deployment_mode: str | None = Field(None, description="Only the profiles of this deployment mode.")


UNAVAILABLE = "Model profile store unavailable"


@bp.errorhandler(ProfilesUnavailable)
def _profiles_unavailable(exc):
    return detail_error(503, UNAVAILABLE)


def _profile(body: ModelProfileBody, role: str, deployment_mode: str) -> ModelProfile:
    return ModelProfile(role=role, deployment_mode=deployment_mode, model=body.model,
                        base_url=body.base_url, temperature=body.temperature, kwargs=body.kwargs)


@bp.get("/v1/model-profiles")
@documented("List model profiles", query=ProfilesQuery,
            responses={200: list[ModelProfileInfo], 503: UNAVAILABLE})
def list_model_profiles():
    deployment_mode = request.args.get("deployment_mode")
    profiles = current_runtime().profiles.list_profiles(deployment_mode)
    return json_response([p.as_dict() for p in profiles])


@bp.post("/v1/model-profiles")
@documented("Create or replace a model profile (unique on role and deployment mode)", body=ModelProfileBody,
            responses={201: NULL_BODY, 503: UNAVAILABLE}, admin=True)
@require_admin
def create_model_profile():
    body, _ = parse_body(ModelProfileBody)
    current_runtime().profiles.upsert_profile(_profile(body, body.role, body.deployment_mode))
    return json_response(None, 201)


@bp.put("/v1/model-profiles/<role>/<deployment_mode>")
@documented("Create or replace the model profile of a role and deployment mode", body=ModelProfileUpdate,
            responses={200: NULL_BODY, 400: "Body does not match path", 503: UNAVAILABLE}, admin=True)
@require_admin
def replace_model_profile(role: str, deployment_mode: str):
    body, _ = parse_body(ModelProfileUpdate)
    if body.role not in (None, role) or body.deployment_mode not in (None, deployment_mode):
        return detail_error(400, "Body does not match path")
    current_runtime().profiles.upsert_profile(_profile(body, role, deployment_mode))
    return json_response(None)


@bp.delete("/v1/model-profiles/<role>/<deployment_mode>")
@documented("Delete a model profile", responses={200: NULL_BODY, 404: "Model profile not found", 503: UNAVAILABLE},
            admin=True)
@require_admin
def delete_model_profile(role: str, deployment_mode: str):
    if not current_runtime().profiles.delete_profile(role, deployment_mode):
        return detail_error(404, "Model profile not found")
    return json_response(None)
