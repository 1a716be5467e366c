"""The attachment store on disk and the safe resolution of `/api_files_get` paths."""

from __future__ import annotations

import base64
import os

import pytest

from gateway.attachments import (
    decode_base64, delete_session_files, read_files, resolve_path, sanitise_filename, save_attachments,
    session_dir_name,
)

SESSION = "0b6f8d0e-3f7e-4c55-9a57-5f8f2d9d1c11"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "attachments"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not leak")
    return secret


@pytest.mark.parametrize("raw, expected", [
    ("report.pdf", "report.pdf"),
    ("a b.txt", "a_b.txt"),
    ("../x", "x"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\evil.txt", "evil.txt"),
    ("C:\\Users\\me\\report.pdf", "report.pdf"),
    ("/abs/path/notes.md", "notes.md"),
    (".bashrc", "bashrc"),
    ("x\x00y\x1f.txt", "xy_.txt"),
    ("résumé.pdf", "resume.pdf"),
    ("..", None), (".", None), ("...", None), ("", None), ("dir/", None), ("///", None), ("\x00", None),
    (None, None), (42, None), (["a"], None),
])
def test_file_names_are_sanitised_the_agent_zero_way(raw, expected):
    assert sanitise_filename(raw) == expected


def test_long_names_are_cut_keeping_the_extension():
    name = sanitise_filename("a" * 300 + ".txt")
    assert len(name) == 200 and name.endswith(".txt")


@pytest.mark.parametrize("raw, expected", [
    ("aGVsbG8=", b"hello"), ("aGVs\nbG8=\n", b"hello"), ("", b""),
    ("not base64!", None), ("aGVsbG8", None), (None, None), (123, None),
])
def test_base64_is_standard_and_strict(raw, expected):
    assert decode_base64(raw) == expected


def test_session_dirs_are_plain_ids_or_hashes():
    assert session_dir_name(SESSION) == SESSION
    for odd in ("../evil", "a/b", ".hidden", "..", "x" * 200, "ü"):
        name = session_dir_name(odd)
        assert name.startswith("_") and len(name) == 65 and "/" not in name
    assert session_dir_name("a/b") != session_dir_name("a\\b")


def test_valid_items_are_saved_and_the_rest_skipped(store):
    saved = save_attachments(str(store), SESSION, [
        {"filename": "a.txt", "base64": b64(b"A")},
        "not an object", ["list"], {"filename": "no-content.txt"}, {"base64": b64(b"no name")},
        {"filename": "..", "base64": b64(b"x")}, {"filename": "bad.bin", "base64": "%%%"},
        {"filename": "../../escape.txt", "base64": b64(b"E")},
    ])
    assert [(s.name, s.reference) for s in saved] == [
        ("a.txt", f"attachments/{SESSION}/a.txt"), ("escape.txt", f"attachments/{SESSION}/escape.txt")]
    assert sorted(os.listdir(store / SESSION)) == ["a.txt", "escape.txt"]
    assert (store / SESSION / "escape.txt").read_bytes() == b"E"
    assert sorted(os.listdir(store)) == [SESSION]  # nothing landed beside the session dir


@pytest.mark.parametrize("items", [None, "a.txt", {"filename": "a", "base64": ""}, 5])
def test_attachments_that_are_not_a_list_save_nothing(store, items):
    assert save_attachments(str(store), SESSION, items) == []


def test_same_name_replaces_and_is_referenced_once(store):
    saved = save_attachments(str(store), SESSION, [
        {"filename": "n.txt", "base64": b64(b"first")}, {"filename": "x.txt", "base64": b64(b"x")},
        {"filename": "dir/n.txt", "base64": b64(b"second")}])
    assert [s.name for s in saved] == ["x.txt", "n.txt"]
    assert (store / SESSION / "n.txt").read_bytes() == b"second"
    save_attachments(str(store), SESSION, [{"filename": "n.txt", "base64": b64(b"third")}])
    assert (store / SESSION / "n.txt").read_bytes() == b"third"
    assert sorted(os.listdir(store / SESSION)) == ["n.txt", "x.txt"]  # no temporary files left


def test_saved_files_resolve_by_reference_and_agent_zero_paths(store):
    saved = save_attachments(str(store), SESSION, [{"filename": "doc.txt", "base64": b64(b"content")}])
    expected = {"doc.txt": b64(b"content")}
    for path in (saved[0].reference, "/a0/tmp/uploads/doc.txt", "/a0/usr/uploads/doc.txt",
                 str(store / SESSION / "doc.txt")):
        assert read_files(str(store), "", [path]) == expected, path


def test_bare_agent_zero_name_takes_the_newest_file_of_any_session(store):
    save_attachments(str(store), "older", [{"filename": "same.txt", "base64": b64(b"old")}])
    save_attachments(str(store), "newer", [{"filename": "same.txt", "base64": b64(b"new")}])
    os.utime(store / "older" / "same.txt", (1_000, 1_000))
    os.utime(store / "newer" / "same.txt", (2_000, 2_000))
    assert read_files(str(store), "", ["/a0/tmp/uploads/same.txt"]) == {"same.txt": b64(b"new")}
    os.utime(store / "older" / "same.txt", (3_000, 3_000))
    assert read_files(str(store), "", ["/a0/tmp/uploads/same.txt"]) == {"same.txt": b64(b"old")}


def test_equal_basenames_later_wins_and_unreadable_entries_are_skipped(store):
    save_attachments(str(store), "s1", [{"filename": "f.txt", "base64": b64(b"one")}])
    save_attachments(str(store), "s2", [{"filename": "f.txt", "base64": b64(b"two")}])
    result = read_files(str(store), "", [
        "attachments/s1/f.txt", None, 7, {"p": 1}, "attachments/s1", "attachments/missing.txt",
        "attachments/s2/f.txt", "", "/a0/tmp/uploads/nope.txt"])
    assert result == {"f.txt": b64(b"two")}


def test_traversal_and_outside_paths_resolve_to_nothing(store, outside):
    save_attachments(str(store), SESSION, [{"filename": "ok.txt", "base64": b64(b"ok")}])
    (store / SESSION / "link.txt").symlink_to(outside)
    (store / "linkdir").symlink_to(outside.parent)
    attacks = [
        "attachments/../secret.txt", f"attachments/{SESSION}/../../secret.txt", "/a0/tmp/uploads/../../secret.txt",
        str(outside), "../secret.txt", "/etc/passwd", "/a0/tmp/uploads/..",
        f"attachments/{SESSION}/link.txt", "/a0/tmp/uploads/link.txt", str(store / SESSION / "link.txt"),
        "attachments/linkdir/secret.txt", str(store / "linkdir" / "secret.txt"), "/a0/usr/uploads/secret.txt",
        "attachments/%2e%2e/secret.txt", "attachments/..%2Fsecret.txt", "%2Fetc%2Fpasswd",
        f"attachments/{SESSION}/ok.txt\x00.png", "/etc/passwd\x00", str(store),
    ]
    for path in attacks:
        assert resolve_path(str(store), "", path) is None, path
    assert read_files(str(store), "", attacks) == {}


def test_readonly_root_is_readable_but_not_beyond_it(store, tmp_path, outside):
    readonly = tmp_path / "readonly"
    (readonly / "docs").mkdir(parents=True)
    (readonly / "docs" / "manual.txt").write_text("read me")
    (readonly / "docs" / "out.txt").symlink_to(outside)
    assert read_files(str(store), str(readonly), [str(readonly / "docs" / "manual.txt")]) == {
        "manual.txt": b64(b"read me")}
    assert read_files(str(store), str(readonly), [str(readonly / "docs" / "out.txt"),
                                                  str(readonly / "docs" / ".." / ".." / "secret.txt")]) == {}
    # Without the setting the same file is out of reach.
    assert read_files(str(store), "", [str(readonly / "docs" / "manual.txt")]) == {}


def test_deleting_a_sessions_files_is_repeatable_and_never_follows_a_link_out(store, tmp_path):
    save_attachments(str(store), SESSION, [{"filename": "a.txt", "base64": b64(b"A")}])
    delete_session_files(str(store), SESSION)
    assert not (store / SESSION).exists()
    delete_session_files(str(store), SESSION)  # twice is harmless

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (store / "victim").symlink_to(elsewhere)
    assert save_attachments(str(store), "victim", [{"filename": "x.txt", "base64": b64(b"x")}]) == []
    delete_session_files(str(store), "victim")
    assert not (store / "victim").exists() and (elsewhere / "keep.txt").read_text() == "keep"
    assert sorted(os.listdir(elsewhere)) == ["keep.txt"]
