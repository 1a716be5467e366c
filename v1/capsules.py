"""`/v1/capsules`: a proxy to the capsule registry (list, download, install), with hidden aliases without /v1."""

from __future__ import annotations

from flask import Response

from gateway.auth import require_admin
from gateway.capsules import CapsuleRegistry, InvalidCapsuleId, RegistryError, RegistryUnavailable
from gateway.errors import detail_error, json_response
from gateway.openapi import ANY_JSON, Content, documented
from gateway.runtime import current_runtime

from . import bp


def _registry() -> CapsuleRegistry:
    return CapsuleRegistry.from_settings(current_runtime().settings)


def _failed(exc: Exception) -> Response:
    if isinstance(exc, InvalidCapsuleId):
        return detail_error(400, "Invalid capsule id")
    if isinstance(exc, RegistryError):
        return detail_error(exc.status, exc.text)
    return detail_error(502, "Capsule registry unavailable")


FAILURES = (InvalidCapsuleId, RegistryError, RegistryUnavailable)
FAILURE_ANSWERS = {400: "Invalid capsule id", 502: "Capsule registry unavailable",
                   "default": "The registry's own error status, with its body text as `detail`"}


@bp.get("/v1/capsules")
@bp.get("/capsules")
@documented("List the registry's capsules", responses={
    200: Content(ANY_JSON, "The registry's JSON, as it answered"), **FAILURE_ANSWERS})
def list_capsules():
    try:
        return json_response(_registry().list())
    except FAILURES as exc:
        return _failed(exc)


@bp.get("/v1/capsules/<capsule_id>")
@bp.get("/capsules/<capsule_id>")
@documented("Download a capsule", responses={
    200: Content({"type": "string", "format": "binary"},
                 "The registry's bytes, streamed, with its `Content-Type` (default `application/octet-stream`) "
                 "and `Content-Disposition`", "application/octet-stream"),
    **FAILURE_ANSWERS})
def download_capsule(capsule_id: str):
    try:
        download = _registry().download(capsule_id)
    except FAILURES as exc:
        return _failed(exc)
    headers = {}
    if download.content_disposition:
        headers["Content-Disposition"] = download.content_disposition
    if download.content_length:
        headers["Content-Length"] = download.content_length
    return Response(download.chunks(), content_type=download.content_type, headers=headers,
                    direct_passthrough=True)


@bp.post("/v1/capsules/<capsule_id>/install")
@bp.post("/capsules/<capsule_id>/install")
@documented("Install a capsule", responses={
    200: Content(ANY_JSON, "The registry's JSON, as it answered"), **FAILURE_ANSWERS}, admin=True)
@require_admin
def install_capsule(capsule_id: str):
    try:
        return json_response(_registry().install(capsule_id))
    except FAILURES as exc:
        return _failed(exc)
