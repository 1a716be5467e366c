"""The OpenAPI document against the app it describes: valid, complete, and true to what the routes do."""

from __future__ import annotations

import re
import time

import jwt
import pytest
from openapi_spec_validator import validate

from gateway.app import create_app
from gateway.openapi import build_document
from gateway_server import free_port

SECRET = "unit-test-secret-long-enough-for-hs256-signing"
# Rules of the /v1 blueprint that are deliberately not in the document.
HIDDEN_ALIASES = {"/health", "/capsules", "/capsules/<capsule_id>", "/capsules/<capsule_id>/install"}
WEBSOCKET = "/v1/session/<path:session_id>/stream"
METHODS = ("get", "put", "post", "delete", "patch")


def bearer(*scopes: str) -> dict[str, str]:
    claims = {"sub": "tester", "exp": time.time() + 300, "scope": " ".join(scopes)}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


def make_app(**settings: str):
    return create_app({"RUN_WORKER_IN_PROCESS": "false",
                       # Nothing listens there: capsule calls fail fast instead of reaching a real registry.
                       "CAPSULE_REGISTRY_URL": f"http://127.0.0.1:{free_port()}", **settings})


@pytest.fixture
def app():
    app = make_app()
    yield app
    app.extensions["gateway"].stop()


@pytest.fixture
def secured_app():
    app = make_app(GATEWAY_JWT_SECRET=SECRET)
    yield app
    app.extensions["gateway"].stop()


def operations(document):
    """(method, templated path, operation) of every operation in the document."""
    return [(method, path, item[method]) for path, item in document["paths"].items()
            for method in METHODS if method in item]


def templated(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def v1_rules(app):
    """(method, templated path) of every /v1 blueprint rule a client can call over HTTP, hidden aliases aside."""
    return {(method.lower(), templated(rule.rule)) for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("v1.") and rule.rule not in HIDDEN_ALIASES and rule.rule != WEBSOCKET
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def undocumented(app, document):
    return v1_rules(app) - {(method, path) for method, path, _ in operations(document)}


def concrete(path: str) -> str:
    """A callable path for a templated one (`{x}` -> `x-1`)."""
    return re.sub(r"\{([^}]+)\}", lambda m: f"{m.group(1)}-1", path)


def test_the_document_is_valid_openapi_3_1(app):
    document = build_document(app)
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_every_v1_route_is_documented_and_every_operation_is_a_route(app):
    document = build_document(app)
    documented = {(method, path) for method, path, _ in operations(document)}
    assert undocumented(app, document) == set()
    assert documented == v1_rules(app)
    assert {"/health", "/capsules", "/capsules/{capsule_id}"}.isdisjoint(document["paths"])
    assert {"/openapi.json", "/v1/openapi.json", "/v1/health"} <= set(document["paths"])


def test_a_new_route_without_documentation_is_caught(app):
    app.add_url_rule("/v1/brand-new/<item_id>", endpoint="v1.brand_new", view_func=lambda item_id: "",
                     methods=["PATCH"])
    assert undocumented(app, build_document(app)) == {("patch", "/v1/brand-new/{item_id}")}


def test_the_websocket_route_is_described_but_is_no_operation(app):
    item = build_document(app)["paths"]["/v1/session/{session_id}/stream"]
    assert not set(METHODS) & set(item)
    socket = item["x-websocket"]
    assert [p["name"] for p in socket["parameters"]] == ["session_id", "last_event_id", "from"]
    assert {"accessToken": []} in socket["security"]


def test_security_schemes_and_who_needs_them(app):
    document = build_document(app)
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {"bearer", "apiKey", "accessToken"}
    assert {k: v for k, v in schemes["bearer"].items() if k != "description"} == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert {k: v for k, v in schemes["apiKey"].items() if k != "description"} == {
        "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert {k: v for k, v in schemes["accessToken"].items() if k != "description"} == {
        "type": "apiKey", "in": "query", "name": "access_token"}
    for method, path, operation in operations(document):
        if path in ("/v1/health", "/openapi.json", "/v1/openapi.json"):
            assert operation["security"] == [], path
        elif path.endswith("/events"):
            assert operation["security"] == [{"bearer": []}, {"apiKey": []}, {"accessToken": []}], path
        else:
            assert operation["security"] == [{"bearer": []}, {"apiKey": []}], (method, path)
            assert "401" in operation["responses"], (method, path)


def _call(client, method: str, path: str, headers: dict[str, str]):
    """Call an operation with an empty JSON body; a stream is opened, read up to its status, and closed."""
    response = client.open(concrete(path), method=method.upper(), json={}, headers=headers, buffered=False)
    response.close()
    return response


def test_the_documented_security_is_what_the_routes_demand(secured_app):
    client = secured_app.test_client()
    for method, path, operation in operations(build_document(secured_app)):
        response = _call(client, method, path, {})
        if operation["security"]:
            assert (response.status_code, response.get_json()) == (
                401, {"detail": "Missing Authorization header"}), (method, path)
        else:
            assert response.status_code == 200, (method, path)


def test_admin_operations_list_403_and_only_they_answer_it(secured_app):
    client = secured_app.test_client()
    for method, path, operation in operations(build_document(secured_app)):
        response = _call(client, method, path, bearer("read"))
        if operation.get("x-admin"):
            assert operation["responses"]["403"]["description"] == "Admin scope required", (method, path)
            assert (response.status_code, response.get_json()) == (
                403, {"detail": "Admin scope required"}), (method, path)
        else:
            assert "403" not in operation["responses"], (method, path)
            assert response.status_code != 403, (method, path)


def test_request_bodies_are_the_models_the_views_validate_with(app):
    """An empty object misses exactly the fields the documented schema requires; a list is no object."""
    document = build_document(app)
    client = app.test_client()
    with_body = [(m, p, o) for m, p, o in operations(document) if "requestBody" in o]
    assert {(m, p) for m, p, _ in with_body} == {
        ("post", "/v1/session/message"), ("post", "/v1/session/action"), ("post", "/v1/keys"),
        ("post", "/v1/model-profiles"), ("put", "/v1/model-profiles/{role}/{deployment_mode}"),
        ("post", "/v1/route")}
    for method, path, operation in with_body:
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        empty = client.open(concrete(path), method=method.upper(), json={})
        assert empty.status_code == 422, path
        assert sorted(tuple(e["loc"]) for e in empty.get_json()["detail"]) == sorted(
            ("body", name) for name in schema["required"]), path
        assert all(e["type"] == "missing" for e in empty.get_json()["detail"]), path
        assert "422" in operation["responses"], path
        listed = client.open(concrete(path), method=method.upper(), json=[])
        assert listed.status_code == 422, path


def test_path_parameters_follow_the_rules(app):
    document = build_document(app)
    for method, path, operation in operations(document):
        declared = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        assert declared == re.findall(r"\{([^}]+)\}", path), (method, path)
