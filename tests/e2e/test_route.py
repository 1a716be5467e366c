"""`POST /v1/route` and the operator command that loads the scores it chooses by.

Real mode: the command (`flask --app wsgi scores load FILE`) runs as its own process with the
gateway's settings, writes Postgres, and the running gateway routes by what it wrote. Embedded mode:
the scores live inside one process, so the command runs against the app it serves (Flask's CLI runner).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import requests

from gateway.app import create_app
from gateway_server import ROOT


def route(server, body):
    return requests.post(f"{server.url}/v1/route", json=body, timeout=30)


def models(*names):
    """Model names of this test only (scores stay in the run's store)."""
    tag = uuid.uuid4().hex[:8]
    return [f"{name}-{tag}" for name in names]


def write_scores(tmp_path, scores) -> str:
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(scores))
    return str(path)


def load_scores_command(settings, path):
    """Run the operator command as an operator would, with the gateway's settings in the environment."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "scores", "load", path], cwd=ROOT,
                          env={**os.environ, **settings}, capture_output=True, text=True, timeout=60)


def test_without_scores_the_first_candidate_is_chosen(gateway):
    first, second = models("a", "b")
    response = route(gateway, {"candidates": [first, second], "tenant": "acme", "persona": "p"})
    assert (response.status_code, response.json()) == (200, {"chosen": first, "score": None})
    assert response.headers["X-API-Version"] == "v1"


def test_empty_candidates_are_400(gateway):
    response = route(gateway, {"candidates": []})
    assert (response.status_code, response.json()) == (400, {"detail": "No candidates supplied"})


@pytest.mark.parametrize("body, detail", [
    ({}, [{"loc": ["body", "candidates"], "msg": "Field required", "type": "missing"}]),
    ({"candidates": "a,b"},
     [{"loc": ["body", "candidates"], "msg": "Input should be a valid list", "type": "list_type"}]),
    ({"candidates": ["a", 2]},
     [{"loc": ["body", "candidates", 1], "msg": "Input should be a valid string", "type": "string_type"}]),
    ({"candidates": ["a"], "tenant": 5},
     [{"loc": ["body", "tenant"], "msg": "Input should be a valid string", "type": "string_type"}]),
])
def test_invalid_bodies_are_422_lists(gateway, body, detail):
    response = route(gateway, body)
    assert (response.status_code, response.json()) == (422, {"detail": detail})


def scores_for(a, b, c):
    """a was best but its newest window is worse; b is best now in prod; c is best only in dev."""
    return [
        {"model": a, "deployment_mode": "prod", "score": 0.95, "window_start": "2025-10-01T00:00:00Z"},
        {"model": a, "deployment_mode": "prod", "score": 0.40, "window_start": "2025-10-02T00:00:00Z",
         "window_end": "2025-10-03T00:00:00Z", "samples": 50},
        {"model": b, "deployment_mode": "prod", "score": 0.70, "window_start": 1759276800},
        {"model": c, "deployment_mode": "dev", "score": 0.99, "window_start": "2025-10-05T00:00:00"},
    ]


def expected_routes(a, b, c):
    return [
        ({"candidates": [a, b]}, {"chosen": b, "score": 0.7}),
        ({"candidates": [a, b, c], "deployment_mode": "prod"}, {"chosen": b, "score": 0.7}),
        ({"candidates": [a, b, c]}, {"chosen": c, "score": 0.99}),
        ({"candidates": [a, b, c], "deployment_mode": "staging"}, {"chosen": a, "score": None}),
        ({"candidates": ["unscored", a]}, {"chosen": a, "score": 0.4}),
    ]


def test_route_follows_scores_loaded_by_the_operator_command_real(deploy_real, tmp_path):
    server = deploy_real().start_gateway()
    a, b, c = models("a", "b", "c")
    done = load_scores_command(server.settings, write_scores(tmp_path, scores_for(a, b, c)))
    assert done.returncode == 0, done.stderr
    assert "loaded 4 model score(s) into the postgres store" in done.stdout
    for body, answer in expected_routes(a, b, c):
        response = route(server, body)
        assert (response.status_code, response.json()) == (200, answer), body

    # Loading a window again replaces its score.
    again = [{"model": a, "deployment_mode": "prod", "score": 0.9, "window_start": "2025-10-02T00:00:00Z"}]
    assert load_scores_command(server.settings, write_scores(tmp_path, again)).returncode == 0
    assert route(server, {"candidates": [a, b]}).json() == {"chosen": a, "score": 0.9}


def test_a_bad_scores_file_loads_nothing_real(deploy_real, tmp_path):
    server = deploy_real().start_gateway()
    a, b = models("a", "b")
    scores = [{"model": b, "deployment_mode": "prod", "score": 0.9, "window_start": "2025-10-01T00:00:00Z"},
              {"model": a, "deployment_mode": "prod", "score": "high", "window_start": "2025-10-01T00:00:00Z"}]
    done = load_scores_command(server.settings, write_scores(tmp_path, scores))
    assert done.returncode == 1
    assert "1.score: Input should be a valid number" in done.stderr
    assert route(server, {"candidates": [a, b]}).json() == {"chosen": a, "score": None}


@pytest.fixture
def embedded_app():
    app = create_app({"RUN_WORKER_IN_PROCESS": "false"})
    yield app
    app.extensions["gateway"].stop()


def test_route_follows_scores_loaded_by_the_operator_command_embedded(embedded_app, tmp_path):
    a, b, c = models("a", "b", "c")
    done = embedded_app.test_cli_runner().invoke(args=["scores", "load", write_scores(tmp_path, scores_for(a, b, c))])
    assert done.exit_code == 0, done.output
    assert "loaded 4 model score(s) into the memory store" in done.stdout
    assert "POSTGRES_DSN is not set" in done.stderr  # the operator learns running gateways did not get them
    client = embedded_app.test_client()
    for body, answer in expected_routes(a, b, c):
        response = client.post("/v1/route", json=body)
        assert (response.status_code, response.get_json()) == (200, answer), body


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"model": "a"}), "document: Input should be a valid list"),
    (json.dumps([{"model": "a", "deployment_mode": "m", "score": 1}]), "0.window_start: Field required"),
])
def test_a_bad_scores_file_is_refused_embedded(embedded_app, tmp_path, text, message):
    path = tmp_path / "scores.json"
    path.write_text(text)
    done = embedded_app.test_cli_runner().invoke(args=["scores", "load", str(path)])
    assert done.exit_code == 1
    assert message in done.output
    assert embedded_app.test_client().post("/v1/route", json={"candidates": ["a"]}).get_json() == \
        {"chosen": "a", "score": None}


def test_scores_file_given_at_start_steers_the_route(start_gateway, tmp_path):
    low, high = models("low", "high")
    path = write_scores(tmp_path, [
        {"model": low, "deployment_mode": "prod", "score": 0.2, "window_start": "2026-11-01T00:00:00Z"},
        {"model": high, "deployment_mode": "prod", "score": 0.9, "window_start": "2026-11-01T00:00:00Z"}])
    server = start_gateway({"MODEL_SCORES_FILE": path})
    response = route(server, {"candidates": [low, high]})
    assert (response.status_code, response.json()) == (200, {"chosen": high, "score": 0.9})


def test_a_bad_scores_file_stops_the_gateway_at_start(tmp_path):
    path = write_scores(tmp_path, [{"model": "m", "score": "high"}])
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--check-config", "wsgi:app"],
                            cwd=ROOT, env={**os.environ, "MODEL_SCORES_FILE": path}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "MODEL_SCORES_FILE: cannot load" in result.stderr
