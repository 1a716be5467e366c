"""`POST /v1/keys`, `GET /v1/keys`, `DELETE /v1/keys/{key_id}`: API keys, for admins."""

from __future__ import annotations

from typing import Annotated

from flask import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gateway.auth import current_principal, key_service, require_admin
from gateway.errors import detail_error, json_response
from gateway.openapi import ResponseModel, documented

from . import bp
from .models import parse_body

# One scope is one word of a token's `scope` claim: stored space-separated, so no spaces inside.
Scope = Annotated[str, StringConstraints(pattern=r"^\S+$", max_length=100)]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: str = Field(max_length=100)
    # Decision: optional; a key created with scopes carries them like a token (e.g. `admin`).
    scopes: list[Scope] = Field(default_factory=list, max_length=32)


class ApiKeyInfo(ResponseModel):
    """An API key as listed (the secret is never shown again)."""

    key_id: str
    label: str
    created_at: float = Field(description="Epoch seconds.")
    created_by: str | None
    prefix: str = Field(description="The first 12 characters of the secret.")
    last_used_at: float | None = Field(description="Epoch seconds; updated at most once a minute.")
    revoked: bool
    scopes: list[str]


class ApiKeyCreated(ApiKeyInfo):
    """A new API key, with its secret (shown this once)."""

    secret: str = Field(description="`sk_<key_id>_<random>`: send it as a bearer token or as `X-API-Key`.")


@bp.post("/v1/keys")
@documented("Create an API key", body=KeyCreate, responses={200: ApiKeyCreated}, admin=True)
@require_admin
def create_key():
    body, _ = parse_body(KeyCreate)
    created = key_service().create(label=body.label, created_by=current_principal().subject,
                                   scopes=body.scopes)
    return json_response(created)


@bp.get("/v1/keys")
@documented("List API keys, revoked ones included", responses={200: list[ApiKeyInfo]}, admin=True)
@require_admin
def list_keys():
    return json_response(key_service().list())


@bp.delete("/v1/keys/<key_id>")
@documented("Revoke an API key", responses={204: None, 404: "API key not found"}, admin=True)
@require_admin
def revoke_key(key_id: str):
    if not key_service().revoke(key_id):
        return detail_error(404, "API key not found")
    return Response(status=204)
