"""`/v1/model-profiles`: create, list, replace and delete profiles over HTTP, in both modes."""

from __future__ import annotations

import uuid

import pytest
import requests


def call(server, method, path, body=None, **kwargs):
    return requests.request(method, f"{server.url}{path}", json=body, timeout=30, **kwargs)


@pytest.fixture
def mode_name():
    """A deployment mode no other test uses, so the shared gateway's profiles do not mix."""
    return f"mode-{uuid.uuid4().hex[:8]}"


def listed(server, mode_name):
    response = call(server, "GET", "/v1/model-profiles", params={"deployment_mode": mode_name})
    assert response.status_code == 200
    return response.json()


def test_create_list_replace_delete(gateway, mode_name):
    body = {"role": "dialogue", "deployment_mode": mode_name, "model": "gpt-x", "base_url": "http://llm:8000",
            "temperature": 0.7, "kwargs": {"top_p": 0.9, "stop": ["\n"], "extra": {"a": None}}}
    created = call(gateway, "POST", "/v1/model-profiles", body)
    assert (created.status_code, created.text) == (201, "null")
    assert created.headers["Content-Type"] == "application/json"
    assert created.headers["X-API-Version"] == "v1"
    assert listed(gateway, mode_name) == [body]  # kwargs come back as an object

    replaced = call(gateway, "PUT", f"/v1/model-profiles/dialogue/{mode_name}", {"model": "gpt-y"})
    assert (replaced.status_code, replaced.json()) == (200, None)
    assert listed(gateway, mode_name) == [{"role": "dialogue", "deployment_mode": mode_name, "model": "gpt-y",
                                           "base_url": None, "temperature": 0.2, "kwargs": None}]

    deleted = call(gateway, "DELETE", f"/v1/model-profiles/dialogue/{mode_name}")
    assert (deleted.status_code, deleted.json()) == (200, None)
    assert listed(gateway, mode_name) == []


def test_post_is_an_upsert(gateway, mode_name):
    base = {"role": "planner", "deployment_mode": mode_name, "base_url": "http://llm"}
    assert call(gateway, "POST", "/v1/model-profiles", {**base, "model": "one"}).status_code == 201
    assert call(gateway, "POST", "/v1/model-profiles", {**base, "model": "two"}).status_code == 201
    assert [p["model"] for p in listed(gateway, mode_name)] == ["two"]


def test_put_creates_a_missing_profile_and_accepts_a_matching_body(gateway, mode_name):
    body = {"role": "summary", "deployment_mode": mode_name, "model": "m", "base_url": "http://x", "kwargs": {}}
    response = call(gateway, "PUT", f"/v1/model-profiles/summary/{mode_name}", body)
    assert (response.status_code, response.json()) == (200, None)
    assert listed(gateway, mode_name) == [{**body, "temperature": 0.2}]


def test_list_filters_by_deployment_mode(gateway, mode_name):
    other = f"{mode_name}-other"
    for role, mode in (("b-role", mode_name), ("a-role", mode_name), ("a-role", other)):
        body = {"role": role, "deployment_mode": mode, "model": f"{role}@{mode}"}
        assert call(gateway, "POST", "/v1/model-profiles", body).status_code == 201
    assert [(p["role"], p["model"]) for p in listed(gateway, mode_name)] == [
        ("a-role", f"a-role@{mode_name}"), ("b-role", f"b-role@{mode_name}")]
    everything = call(gateway, "GET", "/v1/model-profiles").json()
    mine = [(p["role"], p["deployment_mode"]) for p in everything if p["deployment_mode"] in (mode_name, other)]
    assert sorted(mine) == [("a-role", mode_name), ("a-role", other), ("b-role", mode_name)]


@pytest.mark.parametrize("mismatch", [{"role": "other"}, {"deployment_mode": "other"}])
def test_put_body_naming_another_profile_is_400(gateway, mode_name, mismatch):
    body = {"role": "dialogue", "deployment_mode": mode_name, "model": "m", **mismatch}
    response = call(gateway, "PUT", f"/v1/model-profiles/dialogue/{mode_name}", body)
    assert (response.status_code, response.json()) == (400, {"detail": "Body does not match path"})
    assert listed(gateway, mode_name) == []


def test_delete_unknown_is_404(gateway, mode_name):
    response = call(gateway, "DELETE", f"/v1/model-profiles/nobody/{mode_name}")
    assert (response.status_code, response.json()) == (404, {"detail": "Model profile not found"})


@pytest.mark.parametrize("body, detail", [
    ({"deployment_mode": "m", "model": "x"},
     [{"loc": ["body", "role"], "msg": "Field required", "type": "missing"}]),
    ({"role": "r", "deployment_mode": "m"},
     [{"loc": ["body", "model"], "msg": "Field required", "type": "missing"}]),
    ({"role": "r", "deployment_mode": "m", "model": "x", "temperature": "hot"},
     [{"loc": ["body", "temperature"], "msg": "Input should be a valid number, unable to parse string as a number",
       "type": "float_parsing"}]),
    ({"role": "r", "deployment_mode": "m", "model": "x", "kwargs": "top_p=1"},
     [{"loc": ["body", "kwargs"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]),
    ({"role": "a/b", "deployment_mode": "m", "model": "x"},
     [{"loc": ["body", "role"], "msg": "String should match pattern '^[^/]+$'", "type": "string_pattern_mismatch"}]),
])
def test_invalid_bodies_are_422_lists(gateway, body, detail):
    response = call(gateway, "POST", "/v1/model-profiles", body)
    assert (response.status_code, response.json()) == (422, {"detail": detail})


def test_put_validates_its_body_too(gateway, mode_name):
    response = call(gateway, "PUT", f"/v1/model-profiles/dialogue/{mode_name}", {"temperature": 1})
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["body", "model"], "msg": "Field required", "type": "missing"}]}


def test_profiles_are_shared_by_gateways_of_one_deployment(deploy_real, mode_name):
    """Real mode only: profiles live in Postgres, so every gateway (and a restarted one) sees them."""
    deployment = deploy_real()
    first, second = deployment.start_gateway(), deployment.start_gateway()
    body = {"role": "dialogue", "deployment_mode": mode_name, "model": "shared", "kwargs": {"k": [1]}}
    assert call(first, "POST", "/v1/model-profiles", body).status_code == 201
    assert listed(second, mode_name) == [{**body, "base_url": None, "temperature": 0.2}]
    second.restart()
    assert [p["model"] for p in listed(second, mode_name)] == ["shared"]
