"""The legacy Agent Zero external API (spec/legacy-api.md), served through the bridge."""

from flask import Blueprint

bp = Blueprint("legacy_api", __name__)

LEGACY_ENDPOINTS = ("api_message", "api_log_get", "api_terminate_chat", "api_reset_chat", "api_files_get",
                    "realtime_session")


def is_legacy_path(path: str) -> bool:
    """True for the legacy endpoints and their Agent Zero 1.x `/api/<name>` aliases."""
    name = path.strip("/").removeprefix("api/")
    return name in LEGACY_ENDPOINTS


from . import views  # noqa: E402,F401  (routes register on import)
