"""The OpenAPI 3.1 document of /v1, built from the routes in `app.url_map` and the models their views use.

A view is documented with `@documented(...)` (placed under its route decorators): its summary, the
pydantic model it validates its body with, its query and header parameters, and its answers by status.
`build_document(app)` walks the app's /v1 rules and reads that metadata, so a path, a method or a path
parameter comes from the real route, and every schema from the real model (pydantic emits JSON Schema
2020-12, which is OpenAPI 3.1's dialect). Security comes from the rules of `gateway.auth`: its open paths
are `security: []`, its stream paths also take `?access_token=`.

Answers, by status (`int` or `"default"`), are given as:
- a pydantic model or any type pydantic can describe (`list[Model]`): a JSON body of that shape;
- a string: a `{"detail": "<that text>"}` error;
- `None`: no body;
- a dict: a raw JSON schema of a JSON body (`NULL_BODY`, `ANY_JSON`);
- `Content(schema, description, media_type)`: a body with its own description, or of another media type;
- a tuple of these: any of them (e.g. a 422 from validation or from a conflict).
Every operation with a body also answers 422 (the validation list); protected ones 401 and 503 (key
store), admin ones 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable, Mapping

from flask import Flask
from pydantic import BaseModel, ConfigDict, TypeAdapter

from .auth import ADMIN_REQUIRED, INVALID_HEADER, INVALID_TOKEN, MISSING_HEADER, OPEN_PATHS, STORE_UNAVAILABLE, \
    STREAM_PATH

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
ATTRIBUTE = "__openapi__"
EXTENSION = "gateway.openapi"
# The blueprint whose rules are documented, and the rules of it that are: /v1 and the root document.
# Its other rules (`/health`, `/capsules...`) are hidden aliases.
BLUEPRINT = "v1"
DOCUMENTED_PREFIX = "/v1/"
DOCUMENTED_OUTSIDE_PREFIX = frozenset({"/openapi.json"})

NULL_BODY: dict[str, Any] = {"type": "null"}
ANY_JSON: dict[str, Any] = {}

BEARER, API_KEY, ACCESS_TOKEN = "bearer", "apiKey", "accessToken"
SECURITY_SCHEMES = {
    BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
             "description": "`Authorization: Bearer <token>`: a JWT, or an API key (`sk_...`) from /v1/keys."},
    API_KEY: {"type": "apiKey", "in": "header", "name": "X-API-Key",
              "description": "An API key (`sk_...`) from /v1/keys."},
    ACCESS_TOKEN: {"type": "apiKey", "in": "query", "name": "access_token",
                   "description": "Streams only (browsers cannot set headers on EventSource): a JWT or an "
                                  "API key."},
}
VERSION_HEADER = {"X-API-Version": {"$ref": "#/components/headers/X-API-Version"}}
# Werkzeug converters -> the JSON schema of the path parameter they accept.
CONVERTER_SCHEMAS = {"int": {"type": "integer"}, "float": {"type": "number"},
                     "uuid": {"type": "string", "format": "uuid"}}
RULE_ARGUMENT = re.compile(r"<(?:([a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


# -- the shapes every /v1 error has (FastAPI's), and the base of response models


class ResponseModel(BaseModel):
    """A body the API answers: every field is always present (null when it has no value)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class Detail(BaseModel):
    """An error: `{"detail": "<text>"}`."""

    detail: str


class ValidationErrorItem(BaseModel):
    """One problem in a request: where (`["body", "metadata", "k"]`), what, and its pydantic type."""

    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(BaseModel):
    """422: the request failed validation."""

    detail: list[ValidationErrorItem]


# -- metadata on views


@dataclass(frozen=True)
class Content:
    """An answer with words of its own, or of another media type (an event stream, a file).

    `schema` is a type pydantic can describe or a raw JSON schema.
    """

    schema: Any = field(default_factory=dict)
    description: str | None = None
    media_type: str = "application/json"


@dataclass(frozen=True)
class Operation:
    summary: str
    description: str | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    responses: Mapping[int | str, Any] = field(default_factory=dict)
    admin: bool = False


def documented(summary: str, *, description: str | None = None, body: type[BaseModel] | None = None,
               query: type[BaseModel] | None = None, headers: type[BaseModel] | None = None,
               responses: Mapping[int | str, Any] | None = None,
               admin: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach the OpenAPI description of a view; `body` must be the model the view validates with."""
    operation = Operation(summary=summary, description=description, body=body, query=query, headers=headers,
                          responses=dict(responses or {}), admin=admin)

    def attach(view: Callable[..., Any]) -> Callable[..., Any]:
        setattr(view, ATTRIBUTE, operation)
        return view

    return attach


def operation_of(view: Callable[..., Any]) -> Operation | None:
    return getattr(view, ATTRIBUTE, None)


# -- which rules are documented


def is_documented_rule(rule: Any) -> bool:
    """A /v1 blueprint rule that belongs in the document (not a hidden alias, not the WebSocket)."""
    return (rule.endpoint.startswith(f"{BLUEPRINT}.") and not getattr(rule, "websocket", False)
            and (rule.rule.startswith(DOCUMENTED_PREFIX) or rule.rule in DOCUMENTED_OUTSIDE_PREFIX))


def is_websocket_rule(rule: Any) -> bool:
    return rule.endpoint.startswith(f"{BLUEPRINT}.") and getattr(rule, "websocket", False)


def rule_methods(rule: Any) -> list[str]:
    """The methods a rule serves, without the ones Flask adds by itself."""
    return sorted(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})


def openapi_path(rule_text: str) -> str:
    """`/v1/session/<path:session_id>/events` -> `/v1/session/{session_id}/events`."""
    return RULE_ARGUMENT.sub(lambda m: "{" + m.group(2) + "}", rule_text)


def _path_parameters(rule_text: str) -> list[dict[str, Any]]:
    parameters = []
    for converter, name in RULE_ARGUMENT.findall(rule_text):
        parameter = {"name": name, "in": "path", "required": True,
                     "schema": dict(CONVERTER_SCHEMAS.get(converter, {"type": "string"}))}
        if converter == "path":
            parameter["description"] = "May contain `/` (sent as is, not percent-encoded)."
        parameters.append(parameter)
    return parameters


# -- schemas


class _Schemas:
    """Collects the types the document names and turns them into schemas with shared components."""

    def __init__(self) -> None:
        self._wanted: dict[tuple[Any, str], TypeAdapter] = {}
        self._schemas: dict[tuple[Any, str], dict[str, Any]] = {}
        self.components: dict[str, Any] = {}

    def want(self, tp: Any, mode: str) -> tuple[Any, str]:
        key = (tp, mode)
        if key not in self._wanted:
            self._wanted[key] = TypeAdapter(tp)
        return key

    def resolve(self) -> None:
        inputs = [(key, key[1], adapter) for key, adapter in self._wanted.items()]
        schemas, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
        self._schemas = {key: schema for (key, _), schema in schemas.items()}
        self.components = definitions.get("$defs", {})

    def get(self, key: tuple[Any, str]) -> dict[str, Any]:
        return self._schemas[key]


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema: optional means absent, never `null` (a query string has no null)."""
    options = schema.get("anyOf")
    if options:
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1:
            schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **kept[0]}
    if schema.get("default", 0) is None:
        schema = {k: v for k, v in schema.items() if k != "default"}
    return schema


def _model_parameters(model: type[BaseModel], location: str) -> list[dict[str, Any]]:
    """One parameter per field of `model` (named by its alias), in `location` ("query" or "header")."""
    schema = model.model_json_schema(by_alias=True, ref_template=REF_TEMPLATE)
    if "$defs" in schema:
        raise ValueError(f"{model.__name__}: parameters must be plain values")
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        description = prop.pop("description", None)
        parameter = {"name": name, "in": location, "required": name in required, "schema": _without_null(prop)}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


# -- answers


def _phrase(status: int | str) -> str:
    return "Any other status" if status == "default" else HTTPStatus(int(status)).phrase


def _answer_parts(answer: Any, schemas: _Schemas) -> list[tuple[str | None, str | None, Any]]:
    """(description, media type, schema key or raw schema) of each alternative of an answer."""
    if isinstance(answer, tuple):
        return [part for alternative in answer for part in _answer_parts(alternative, schemas)]
    if answer is None:
        return [(None, None, None)]
    if isinstance(answer, str):
        return [(answer, "application/json", schemas.want(Detail, "serialization"))]
    if isinstance(answer, Content):
        schema = answer.schema if isinstance(answer.schema, dict) else schemas.want(answer.schema, "serialization")
        return [(answer.description, answer.media_type, schema)]
    if isinstance(answer, dict):
        return [(None, "application/json", answer)]
    return [(None, "application/json", schemas.want(answer, "serialization"))]


def _answers(operation: Operation, *, protected: bool) -> dict[int | str, Any]:
    """The view's answers plus the ones every such operation has (validation, auth, admin)."""
    answers: dict[int | str, list[Any]] = {status: [answer] for status, answer in operation.responses.items()}

    def add(status: int, answer: Any) -> None:
        answers.setdefault(status, []).append(answer)

    if operation.body is not None:
        add(422, HTTPValidationError)
    if protected:
        add(401, (MISSING_HEADER, INVALID_HEADER, INVALID_TOKEN))
        add(503, STORE_UNAVAILABLE)
    if operation.admin:
        add(403, ADMIN_REQUIRED)
    return {status: tuple(parts) for status, parts in answers.items()}


def _response(status: int | str, parts: list[tuple[str | None, str | None, Any]],
              schemas: _Schemas) -> dict[str, Any]:
    texts = [text for text, _, _ in parts if text]
    if len(texts) < len(parts):  # a part without its own words (a model): the status says what it is
        texts.insert(0, _phrase(status))
    response: dict[str, Any] = {"description": "; ".join(dict.fromkeys(texts)),
                                "headers": dict(VERSION_HEADER)}
    if status == 401:
        response["headers"]["WWW-Authenticate"] = {"schema": {"type": "string", "const": "Bearer"}}
    content: dict[str, list[dict[str, Any]]] = {}
    for _, media_type, schema in parts:
        if media_type is None:
            continue
        resolved = schemas.get(schema) if isinstance(schema, tuple) else schema
        if resolved not in content.setdefault(media_type, []):
            content[media_type].append(resolved)
    if content:
        response["content"] = {
            media_type: {"schema": options[0] if len(options) == 1 else {"anyOf": options}}
            for media_type, options in content.items()}
    return response


# -- the document


def _security(path: str) -> list[dict[str, list[str]]]:
    if path in OPEN_PATHS:
        return []
    schemes = [{BEARER: []}, {API_KEY: []}]
    if STREAM_PATH.fullmatch(path):
        schemes.append({ACCESS_TOKEN: []})
    return schemes


def _tag(view: Callable[..., Any]) -> str:
    return view.__module__.rsplit(".", 1)[-1].removesuffix("_routes")


def _operation_id(view: Callable[..., Any], path: str, taken: set[str]) -> str:
    """The view's name; a second rule of the same view adds its path (operation ids are unique)."""
    operation_id = view.__name__
    if operation_id in taken:
        operation_id = f"{operation_id}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}"
    taken.add(operation_id)
    return operation_id


def build_document(app: Flask, *, title: str = "SomaAgent01 gateway", version: str = "v1") -> dict[str, Any]:
    """The OpenAPI document of the app's /v1 routes (undocumented views are left out; a test catches them)."""
    schemas = _Schemas()
    pending: list[tuple[str, str, Any, Operation, Callable[..., Any]]] = []
    websockets: list[tuple[str, Any, Operation | None]] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        if is_websocket_rule(rule):
            websockets.append((openapi_path(rule.rule), rule, operation_of(view)))
            continue
        operation = operation_of(view)
        if not is_documented_rule(rule) or operation is None:
            continue
        for method in rule_methods(rule):
            pending.append((openapi_path(rule.rule), method, rule, operation, view))

    # Every type first, so that one pass gives all schemas and their shared components.
    plans = []
    for path, method, rule, operation, view in pending:
        body_key = schemas.want(operation.body, "validation") if operation.body is not None else None
        answers = _answers(operation, protected=bool(_security(path)))
        parts = {status: _answer_parts(answer, schemas) for status, answer in answers.items()}
        plans.append((path, method, rule, operation, view, body_key, parts))
    schemas.want(Detail, "serialization")
    schemas.resolve()

    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    for path, method, rule, operation, view, body_key, parts in plans:
        parameters = _path_parameters(rule.rule)
        if operation.query is not None:
            parameters += _model_parameters(operation.query, "query")
        if operation.headers is not None:
            parameters += _model_parameters(operation.headers, "header")
        entry: dict[str, Any] = {"operationId": _operation_id(view, path, taken), "summary": operation.summary,
                                 "tags": [_tag(view)]}
        if operation.description:
            entry["description"] = operation.description
        if parameters:
            entry["parameters"] = parameters
        if body_key is not None:
            entry["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": schemas.get(body_key)}}}
        entry["responses"] = {str(status): _response(status, part_list, schemas)
                              for status, part_list in sorted(parts.items(), key=lambda item: str(item[0]))}
        entry["security"] = _security(path)
        if operation.admin:
            entry["x-admin"] = True
        paths.setdefault(path, {})[method] = entry

    for path, rule, operation in websockets:
        # OpenAPI has no WebSocket operations: the path is described, with its parameters, as an extension.
        paths[path] = {
            "summary": operation.summary if operation else "WebSocket",
            "description": operation.description if operation and operation.description else "",
            "x-websocket": {
                "parameters": _path_parameters(rule.rule) + (
                    _model_parameters(operation.query, "query") if operation and operation.query else []),
                "security": _security(path)},
        }

    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version,
                 "description": "The /v1 API. Errors are `{\"detail\": \"...\"}`; request validation errors "
                                "are 422 `{\"detail\": [{\"loc\", \"msg\", \"type\"}]}`. Every response carries "
                                "`X-API-Version`. Security applies when the gateway requires tokens; admin "
                                "operations (`x-admin`) need the `admin` or `keys:manage` scope."},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": SECURITY_SCHEMES,
            "headers": {"X-API-Version": {"description": "The API version (setting `GATEWAY_API_VERSION`).",
                                          "schema": {"type": "string"}}},
        },
    }


def app_document(app: Flask, version: str) -> dict[str, Any]:
    """The app's document, built once (routes do not change after start-up)."""
    document = app.extensions.get(EXTENSION)
    if document is None:
        document = app.extensions[EXTENSION] = build_document(app, version=version)
    return document
