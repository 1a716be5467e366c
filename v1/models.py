"""Request bodies of the /v1 routes, validated as FastAPI validated them (pydantic, 422 lists)."""

from __future__ import annotations

from typing import Any

from flask import request
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SessionMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    session_id: str | None = None
    persona_id: str | None = None
    message: str
    attachments: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)


class SessionAction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    session_id: str | None = None
    persona_id: str | None = None
    action: str
    metadata: dict[str, str] = Field(default_factory=dict)


class BodyInvalid(Exception):
    """The request body failed validation; `errors` are FastAPI-style `{loc, msg, type}` items."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("request body invalid")
        self.errors = errors


def read_json_body() -> Any:
    """The JSON body, or None when there is none (not JSON, or empty). Raises on malformed JSON."""
    if not request.is_json or not request.get_data(cache=True):
        return None
    try:
        return request.get_json(force=True)
    except Exception:
        raise BodyInvalid([{"loc": ["body", 0], "msg": "JSON decode error", "type": "json_invalid"}]) from None


def parse_body(model: type[BaseModel]) -> tuple[BaseModel, Any]:
    """Validate the request body against `model`; return the model and the raw JSON."""
    raw = read_json_body()
    if raw is None:
        raise BodyInvalid([{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    try:
        return model.model_validate(raw), raw
    except ValidationError as exc:
        raise BodyInvalid([{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                           for e in exc.errors()]) from None
