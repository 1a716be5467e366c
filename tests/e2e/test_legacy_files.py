"""`POST /api_files_get` and `/api_message` attachments over HTTP, against gunicorn.

The gateway keeps attachments in a directory of the test (ATTACHMENTS_DIR) and may read a second one
(FILES_READONLY_ROOT), so the tests can check the disk and plant symlinks and secrets around them.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from clients import legacy
from conftest import Deployment
from gateway_server import GatewayServer

SECRET = b"top secret, never served"


@dataclass
class Env:
    server: GatewayServer
    root: Path  # holds the store, the read-only root and a secret outside both

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def store(self) -> Path:
        return self.root / "attachments"

    @property
    def readonly(self) -> Path:
        return self.root / "readonly"

    @property
    def secret(self) -> Path:
        return self.root / "secret.txt"


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    (root / "attachments").mkdir()
    (root / "readonly" / "docs").mkdir(parents=True)
    (root / "readonly" / "docs" / "manual.txt").write_bytes(b"the manual")
    (root / "secret.txt").write_bytes(SECRET)
    deployment = Deployment(stack, {"ATTACHMENTS_DIR": str(root / "attachments"),
                                    "FILES_READONLY_ROOT": str(root / "readonly")})
    try:
        yield Env(deployment.start_gateway(), root)
    finally:
        deployment.stop()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def send(env: Env, attachments, message: str = "files", **fields) -> str:
    response = legacy(env.url, "/api_message", {"message": message, "attachments": attachments, **fields})
    assert response.status_code == 200, response.text
    return response.json()["context_id"]


def files_get(env: Env, paths, path: str = "/api_files_get") -> requests.Response:
    return legacy(env.url, path, {"paths": paths})


def user_item(env: Env, context_id: str) -> dict:
    return legacy(env.url, "/api_log_get", {"context_id": context_id}).json()["log"]["items"][0]


def test_attachments_round_trip_through_every_path_form(env):
    binary = bytes(range(256))
    context_id = send(env, [{"filename": "notes.txt", "base64": b64(b"plain text")},
                            {"filename": "blob.bin", "base64": b64(binary)}])
    assert (env.store / context_id / "notes.txt").read_bytes() == b"plain text"
    assert (env.store / context_id / "blob.bin").read_bytes() == binary
    assert user_item(env, context_id)["kvps"] == {"attachments": ["notes.txt", "blob.bin"]}

    for form in (f"attachments/{context_id}/blob.bin", "/a0/tmp/uploads/blob.bin", "/a0/usr/uploads/blob.bin",
                 str(env.store / context_id / "blob.bin")):
        response = files_get(env, [form])
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"blob.bin": b64(binary)}, form
    both = files_get(env, [f"attachments/{context_id}/notes.txt", f"attachments/{context_id}/blob.bin"])
    assert list(both.json()) == ["notes.txt", "blob.bin"]


def test_file_names_are_sanitised_and_nothing_lands_outside_the_session(env):
    context_id = send(env, [
        {"filename": "../../escape.txt", "base64": b64(b"1")},
        {"filename": "..\\..\\windows.txt", "base64": b64(b"2")},
        {"filename": "/etc/cron.d/evil", "base64": b64(b"3")},
        {"filename": "my report.pdf", "base64": b64(b"4")},
        {"filename": ".hidden", "base64": b64(b"5")},
    ])
    assert sorted(os.listdir(env.store / context_id)) == ["escape.txt", "evil", "hidden", "my_report.pdf",
                                                          "windows.txt"]
    assert user_item(env, context_id)["kvps"]["attachments"] == [
        "escape.txt", "windows.txt", "evil", "my_report.pdf", "hidden"]
    assert not (env.root / "escape.txt").exists() and not (env.store / "escape.txt").exists()
    assert sorted(os.listdir(env.root)) == ["attachments", "readonly", "secret.txt"]


def test_bad_attachment_items_are_skipped_never_an_error(env):
    context_id = send(env, [
        "not an object", 42, None, ["filename", "base64"],
        {"filename": "no-content.txt"}, {"base64": b64(b"nameless")},
        {"filename": "", "base64": b64(b"x")}, {"filename": "..", "base64": b64(b"x")},
        {"filename": "///", "base64": b64(b"x")}, {"filename": 7, "base64": b64(b"x")},
        {"filename": "bad.b64", "base64": "%%% not base64"}, {"filename": "nums.txt", "base64": 12},
        {"filename": "good.txt", "base64": b64(b"good")},
    ])
    assert os.listdir(env.store / context_id) == ["good.txt"]
    assert user_item(env, context_id)["kvps"] == {"attachments": ["good.txt"]}


@pytest.mark.parametrize("attachments", ["a string", {"filename": "a.txt", "base64": "YQ=="}, 5, None])
def test_attachments_that_are_not_a_list_are_ignored(env, attachments):
    context_id = send(env, attachments)
    assert user_item(env, context_id)["kvps"] == {"attachments": []}


def test_same_name_replaces_the_earlier_file(env):
    context_id = send(env, [{"filename": "v.txt", "base64": b64(b"one")}])
    legacy(env.url, "/api_message", {"message": "again", "context_id": context_id,
                                     "attachments": [{"filename": "v.txt", "base64": b64(b"two")}]})
    assert os.listdir(env.store / context_id) == ["v.txt"]
    assert files_get(env, [f"attachments/{context_id}/v.txt"]).json() == {"v.txt": b64(b"two")}


def test_bare_agent_zero_path_gets_the_newest_file_of_that_name(env):
    first = send(env, [{"filename": "shared-name.txt", "base64": b64(b"older")}])
    second = send(env, [{"filename": "shared-name.txt", "base64": b64(b"newer")}])
    os.utime(env.store / first / "shared-name.txt", (1_000_000, 1_000_000))
    assert files_get(env, ["/a0/tmp/uploads/shared-name.txt"]).json() == {"shared-name.txt": b64(b"newer")}
    os.utime(env.store / second / "shared-name.txt", (999_999, 999_999))
    assert files_get(env, ["/a0/usr/uploads/shared-name.txt"]).json() == {"shared-name.txt": b64(b"older")}


def test_missing_entries_are_skipped_and_a_later_equal_basename_wins(env):
    a = send(env, [{"filename": "dup.txt", "base64": b64(b"from a")}])
    b = send(env, [{"filename": "dup.txt", "base64": b64(b"from b")}])
    response = files_get(env, [f"attachments/{a}/dup.txt", "attachments/nope/none.txt", None, 5, {"x": 1},
                               ["nested"], f"attachments/{a}", "/a0/tmp/uploads/never-uploaded.txt",
                               f"attachments/{b}/dup.txt"])
    assert (response.status_code, response.json()) == (200, {"dup.txt": b64(b"from b")})


def test_nothing_found_is_an_empty_object(env):
    response = files_get(env, ["/nowhere/at/all.txt"])
    assert (response.status_code, response.text) == (200, "{}")


def test_read_only_root_is_served(env):
    response = files_get(env, [str(env.readonly / "docs" / "manual.txt")])
    assert response.json() == {"manual.txt": b64(b"the manual")}


def test_traversal_outside_paths_symlinks_and_encoded_forms_return_nothing(env):
    context_id = send(env, [{"filename": "ok.txt", "base64": b64(b"ok")}])
    session = env.store / context_id
    (session / "link.txt").symlink_to(env.secret)
    (env.store / "linked-dir").symlink_to(env.root)
    (env.readonly / "docs" / "out.txt").symlink_to(env.secret)
    attacks = [
        "attachments/../secret.txt", f"attachments/{context_id}/../../secret.txt",
        "/a0/tmp/uploads/../../secret.txt", "/a0/usr/uploads/../../../etc/passwd",
        str(env.secret), str(env.store / ".." / "secret.txt"), str(env.readonly / ".." / "secret.txt"),
        "/etc/passwd", "../secret.txt", "/a0/tmp/uploads/secret.txt",
        f"attachments/{context_id}/link.txt", "/a0/tmp/uploads/link.txt", str(session / "link.txt"),
        "attachments/linked-dir/secret.txt", str(env.store / "linked-dir" / "secret.txt"),
        str(env.readonly / "docs" / "out.txt"),
        "attachments/%2e%2e/secret.txt", "attachments/..%2Fsecret.txt", "/a0/tmp/uploads/..%2F..%2Fsecret.txt",
        "%2Fetc%2Fpasswd", "attachments%2F..%2Fsecret.txt",
        f"attachments/{context_id}/ok.txt\u0000.png", "/etc/passwd\u0000",
        str(env.store), str(session), "/a0/tmp/uploads/", "/a0/tmp/uploads/..",
    ]
    for path in attacks:
        response = files_get(env, [path])
        assert (response.status_code, response.json()) == (200, {}), path
    assert files_get(env, attacks).json() == {}
    # The legitimate file of the same session is still served.
    assert files_get(env, [f"attachments/{context_id}/ok.txt"]).json() == {"ok.txt": b64(b"ok")}


@pytest.mark.parametrize("body", [{}, {"paths": None}, {"paths": []}, {"paths": ""}, {"paths": {}}, "text"])
def test_missing_or_empty_paths_is_400(env, body):
    response = legacy(env.url, "/api_files_get", body)
    assert (response.status_code, response.json()) == (400, {"error": "paths array is required"})


@pytest.mark.parametrize("paths", ["/a0/tmp/uploads/x.txt", {"0": "x"}, 5, True])
def test_paths_that_are_not_a_list_is_400(env, paths):
    response = files_get(env, paths)
    assert (response.status_code, response.json()) == (400, {"error": "paths must be an array"})


def test_alias_keyless_and_other_methods(env):
    context_id = send(env, [{"filename": "alias.txt", "base64": b64(b"alias")}])
    response = files_get(env, [f"attachments/{context_id}/alias.txt"], path="/api/api_files_get")
    assert response.json() == {"alias.txt": b64(b"alias")}
    response = requests.post(f"{env.url}/api_files_get", json={"paths": ["x"]}, timeout=10)
    assert (response.status_code, response.text) == (401, "API key required")
    for path in ("/api_files_get", "/api/api_files_get"):
        response = requests.get(f"{env.url}{path}", timeout=10)
        assert (response.status_code, response.json()) == (405, {"error": "Method Not Allowed"})
