"""The attachment store on disk, and the safe resolution of file paths for `/api_files_get`.

Layout: `ATTACHMENTS_DIR/<session dir>/<file name>`.

- Session dir: the session id itself when it is a plain name (`[A-Za-z0-9][A-Za-z0-9._-]{0,127}`,
  e.g. every uuid), else `_` + the sha256 of the id, so any id (v1 accepts any string) maps to one
  directory inside the store and the two forms never collide.
- File name: Agent Zero's own rule (werkzeug's `secure_filename`, which its `/api_message` used) applied
  to the last part of the given name, with both `/` and `\\` taken as separators: no path parts, no
  control characters, ASCII letters, digits, `_`, `-`, `.` only (spaces become `_`), no leading dots or
  underscores, so never `.`, `..` or a hidden file. Longer names are cut to MAX_NAME_LENGTH, keeping a
  short extension. A name that comes out empty is skipped. The same names (and so the same
  `/a0/tmp/uploads/<name>` paths) as Agent Zero produced.
- Content: standard base64 (whitespace such as MIME line breaks ignored); anything else is skipped.
- A file is written to a temporary name and renamed over its final name, so a later file with the same
  name replaces the earlier one atomically and a reader never sees half a file.

Reference strings (what the inbound event carries): `attachments/<session dir>/<file name>`, a path
relative to the store, whose root is named `attachments/` whatever ATTACHMENTS_DIR is on disk.

Resolving a requested path (`read_files`), never decoding it (a percent-encoded form is a literal name):
1. `attachments/<session dir>/<name>`: that file in the store;
2. Agent Zero's `/a0/tmp/uploads/<name>` and `/a0/usr/uploads/<name>` (one plain name): the file of that
   name in any session's directory of the store, the newest (by modification time) when several
   sessions hold one. Agent Zero had one upload folder for all chats, and the legacy key opens every
   session, so this shows a caller nothing it could not already read;
3. anything else: a filesystem path (relative ones from the gateway's working directory).
Then the real path (symlinks resolved) must be a regular file inside the store or inside
FILES_READONLY_ROOT when that is set; anything else (`..`, outside paths, symlinks pointing out,
NUL bytes, directories, missing files) is skipped as if missing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

from werkzeug.utils import secure_filename

log = logging.getLogger(__name__)

REFERENCE_PREFIX = "attachments/"
AGENT_ZERO_UPLOAD_DIRS = ("/a0/tmp/uploads/", "/a0/usr/uploads/")
MAX_NAME_LENGTH = 200
PLAIN_SESSION_DIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SEPARATORS = re.compile(r"[/\\]")
WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SavedAttachment:
    name: str
    reference: str


def session_dir_name(session_id: str) -> str:
    """The directory of a session inside the store: its id when plain, else a hash of it."""
    if PLAIN_SESSION_DIR.fullmatch(session_id):
        return session_id
    return "_" + hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def sanitise_filename(raw: Any) -> str | None:
    """The stored name for a client's file name, or None when nothing safe is left of it."""
    if not isinstance(raw, str):
        return None
    name = secure_filename(SEPARATORS.split(raw)[-1])
    if len(name) > MAX_NAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        keep = f".{ext}" if dot and stem and len(ext) <= 20 else ""
        name = name[: MAX_NAME_LENGTH - len(keep)].rstrip("._") + keep
    return name or None


def decode_base64(raw: Any) -> bytes | None:
    """Standard base64 content, whitespace ignored; None when it is not valid base64."""
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(WHITESPACE.sub("", raw), validate=True)
    except (binascii.Error, ValueError):
        return None


def _store_root(attachments_dir: str) -> str:
    return os.path.realpath(attachments_dir)


def session_path(attachments_dir: str, session_id: str) -> str:
    return os.path.join(_store_root(attachments_dir), session_dir_name(session_id))


def save_attachments(attachments_dir: str, session_id: str, items: Any) -> list[SavedAttachment]:
    """Save the valid `{"filename", "base64"}` items of a session; skip every other item silently."""
    if not isinstance(items, list):
        return []
    saved: dict[str, SavedAttachment] = {}
    directory = session_path(attachments_dir, session_id)
    if os.path.islink(directory):
        log.warning("attachment directory of session %s is a symlink; not writing through it", session_id)
        return []
    for item in items:
        if not isinstance(item, dict) or "filename" not in item or "base64" not in item:
            continue
        name = sanitise_filename(item["filename"])
        content = decode_base64(item["base64"])
        if name is None or content is None:
            continue
        try:
            _write(directory, name, content)
        except OSError:
            log.warning("could not save attachment %r of session %s", name, session_id, exc_info=True)
            continue
        reference = f"{REFERENCE_PREFIX}{session_dir_name(session_id)}/{name}"
        saved.pop(name, None)  # the same name twice: the later one replaced the file
        saved[name] = SavedAttachment(name, reference)
    return list(saved.values())


def _write(directory: str, name: str, content: bytes) -> None:
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(content)
        os.replace(temporary, os.path.join(directory, name))
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def delete_session_files(attachments_dir: str, session_id: str) -> None:
    """Remove a session's attachments; harmless when they are already gone."""
    directory = session_path(attachments_dir, session_id)
    if os.path.islink(directory):
        os.unlink(directory)  # never follow a link out of the store
    else:
        shutil.rmtree(directory, ignore_errors=True)


def _inside(root: str, path: str) -> bool:
    return path != root and os.path.commonpath([root, path]) == root


def _allowed_roots(attachments_dir: str, readonly_root: str) -> list[str]:
    roots = [_store_root(attachments_dir)]
    if readonly_root:
        roots.append(os.path.realpath(readonly_root))
    return roots


def _safe_file(path: str, roots: list[str]) -> str | None:
    """The real path of `path` when it is a regular file inside one of `roots`, else None."""
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return None
    if any(_inside(root, real) for root in roots) and os.path.isfile(real):
        return real
    return None


def _newest_upload(store: str, name: str, roots: list[str]) -> str | None:
    """The newest file called `name` in any session directory of the store."""
    if name in ("", ".", "..") or "/" in name:
        return None
    best: tuple[float, str] | None = None
    try:
        entries = list(os.scandir(store))
    except OSError:
        return None
    for entry in entries:
        found = _safe_file(os.path.join(entry.path, name), roots)
        if found is None:
            continue
        try:
            mtime = os.stat(found).st_mtime
        except OSError:
            continue
        if best is None or mtime > best[0]:
            best = (mtime, found)
    return best[1] if best else None


def resolve_path(attachments_dir: str, readonly_root: str, requested: Any) -> str | None:
    """The real path of a file a client may read, or None (not found, or not allowed)."""
    if not isinstance(requested, str) or not requested or "\x00" in requested:
        return None
    roots = _allowed_roots(attachments_dir, readonly_root)
    store = roots[0]
    if requested.startswith(REFERENCE_PREFIX):
        return _safe_file(os.path.join(store, requested[len(REFERENCE_PREFIX):]), roots)
    for prefix in AGENT_ZERO_UPLOAD_DIRS:
        if requested.startswith(prefix) and "/" not in requested[len(prefix):]:
            return _newest_upload(store, requested[len(prefix):], roots)
    return _safe_file(requested, roots)


def read_files(attachments_dir: str, readonly_root: str, paths: Iterable[Any]) -> dict[str, str]:
    """`{basename: base64}` of the requested files that resolve; a later equal basename wins."""
    found: dict[str, str] = {}
    for requested in paths:
        real = resolve_path(attachments_dir, readonly_root, requested)
        if real is None:
            continue
        try:
            with open(real, "rb") as handle:
                content = handle.read()
        except OSError:
            continue
        found[os.path.basename(requested)] = base64.b64encode(content).decode("ascii")
    return found
