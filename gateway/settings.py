"""All gateway settings, read from the environment through small typed parsers.

Every setting has one name (its environment variable), one type and one default. A malformed value
fails at start with a `SettingsError` that names the setting, so an operator never runs a gateway
that silently ignored what they asked for.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Settings", "SettingsError", "load_settings"]

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting has a value the gateway cannot use."""


def parse_bool(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name}: expected true/false (1/0, yes/no), got {raw!r}")


def parse_int(name: str, raw: str, minimum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {value}")
    return value


def parse_float(name: str, raw: str, minimum: float | None = None) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{name}: expected a finite number, got {raw!r}")
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {value}")
    return value


def parse_list(name: str, raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip()
    if value not in choices:
        raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
    return value


def setting(default: Any, *, kind: str = "str", minimum: float | None = None,
            choices: tuple[str, ...] = (), aliases: tuple[str, ...] = (), secret: bool = False):
    """Declare one setting: its default, how its text is parsed, and other names it may be given."""
    return field(default=default, metadata={
        "kind": kind, "minimum": minimum, "choices": choices, "aliases": aliases, "secret": secret,
    })


@dataclass(frozen=True)
class Settings:
    """The gateway's configuration. Field names are the environment variable names, lower-cased."""

    # Serving
    gateway_port: int = setting(8010, kind="int", minimum=1)
    gateway_workers: int = setting(1, kind="int", minimum=1)
    gateway_worker_connections: int = setting(1000, kind="int", minimum=1)
    gateway_api_version: str = setting("v1")
    log_level: str = setting("INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    # Backends: unset means the in-process (embedded) adapter for that role.
    kafka_bootstrap_servers: str = setting("")
    postgres_dsn: str = setting("", aliases=("SA01_POSTGRES_DSN",), secret=True)
    redis_url: str = setting("", secret=True)

    # Kafka (used when KAFKA_BOOTSTRAP_SERVERS is set)
    kafka_security_protocol: str = setting(
        "PLAINTEXT", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    kafka_sasl_mechanism: str = setting(
        "PLAIN", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"))
    kafka_sasl_username: str = setting("")
    kafka_sasl_password: str = setting("", secret=True)
    kafka_client_id: str = setting("soma-gateway")
    kafka_publish_timeout_seconds: float = setting(10.0, kind="float", minimum=0.1)
    kafka_session_timeout_ms: int = setting(10_000, kind="int", minimum=1000)
    kafka_create_topics: bool = setting(True, kind="bool")
    kafka_topic_partitions: int = setting(3, kind="int", minimum=1)
    # Consumer groups: the worker's is fixed by spec/events.md; the recorder's is shared by every
    # gateway process of one deployment (one writer per partition).
    worker_consumer_group: str = setting("conversation-worker")
    history_consumer_group: str = setting("gateway-history")

    # Postgres (used when POSTGRES_DSN is set)
    postgres_schema: str = setting("public")
    postgres_pool_min: int = setting(1, kind="int", minimum=0)
    postgres_pool_max: int = setting(10, kind="int", minimum=1)

    # Redis (used when REDIS_URL is set)
    redis_password: str = setting("", secret=True)

    # Topics (spec/events.md)
    conversation_inbound: str = setting("conversation.inbound")
    conversation_outbound: str = setting("conversation.outbound")
    tool_requests_topic: str = setting("tool.requests")
    tool_results_topic: str = setting("tool.results")

    # Embedded bus
    memory_bus_partitions: int = setting(4, kind="int", minimum=1)
    memory_bus_retention: int = setting(100_000, kind="int", minimum=1)

    # Session history and cache
    history_retention_events: int = setting(10_000, kind="int", minimum=1)
    session_cache_ttl_seconds: int = setting(900, kind="int", minimum=1)
    idempotency_ttl_seconds: int = setting(86_400, kind="int", minimum=86_400)

    # Reference worker
    run_worker_in_process: bool | None = setting(None, kind="bool")
    worker_reply_delay_ms: int = setting(20, kind="int", minimum=0)
    worker_reply_prefix: str = setting("Echo: ")
    worker_reply_chunks: int = setting(3, kind="int", minimum=1)

    # Streams
    sse_heartbeat_seconds: float = setting(15.0, kind="float", minimum=0.05)
    sse_retry_ms: int = setting(3000, kind="int", minimum=0)
    stream_queue_size: int = setting(1000, kind="int", minimum=1)
    ws_ping_seconds: float = setting(25.0, kind="float", minimum=0)

    # Legacy surface and bridge
    legacy_api_key: str = setting("", secret=True)
    gateway_require_auth: bool = setting(False, kind="bool")
    bridge_timeout_seconds: float = setting(300.0, kind="float", minimum=0.01)

    # /v1 authentication (spec/v1-api.md)
    gateway_jwt_secret: str = setting("", secret=True)
    gateway_jwt_public_key: str = setting("")
    gateway_jwks_url: str = setting("")
    gateway_jwks_cache_seconds: int = setting(300, kind="int", minimum=0)
    gateway_jwt_algorithms: tuple[str, ...] = setting(("HS256", "RS256"), kind="list")
    gateway_jwt_audience: str = setting("")
    gateway_jwt_issuer: str = setting("")
    gateway_jwt_leeway: int = setting(10, kind="int", minimum=0)
    gateway_jwt_tenant_claims: tuple[str, ...] = setting(("tenant", "org", "customer"), kind="list")
    api_key_pbkdf2_iterations: int = setting(390_000, kind="int", minimum=390_000)

    # Model scores loaded at start (the embedded mode has no other way to get them into a gateway)
    model_scores_file: str = setting("")

    # Requeue, capsules, optional health dependencies
    policy_requeue_prefix: str = setting("policy:requeue")
    capsule_registry_url: str = setting("http://localhost:8000")
    capsule_registry_timeout_seconds: float = setting(10.0, kind="float", minimum=0.1)
    telemetry_health_url: str = setting("")
    delegation_health_url: str = setting("")

    # Legacy attachments, files and expiry (spec/legacy-api.md)
    attachments_dir: str = setting("data/attachments")
    files_readonly_root: str = setting("")
    session_sweep_interval_seconds: float = setting(60.0, kind="float", minimum=0.05)

    # Legacy /realtime_session
    realtime_enabled: bool = setting(False, kind="bool")
    realtime_provider: str = setting("openai")
    realtime_api_key: str = setting("", aliases=("OPENAI_API_KEY",), secret=True)
    realtime_endpoint: str = setting("https://api.openai.com/v1/realtime/sessions")
    realtime_model: str = setting("gpt-4o-realtime-preview")
    realtime_voice: str = setting("verse")
    realtime_endpoint_allowlist: tuple[str, ...] = setting((), kind="list")
    realtime_timeout_seconds: float = setting(30.0, kind="float", minimum=0.1)

    # CORS (spec/v1-api.md)
    gateway_cors_origins: tuple[str, ...] = setting(("*",), kind="list")
    gateway_cors_methods: tuple[str, ...] = setting(("*",), kind="list")
    gateway_cors_headers: tuple[str, ...] = setting(("*",), kind="list")
    gateway_cors_credentials: bool = setting(False, kind="bool")

    @property
    def embedded_roles(self) -> list[str]:
        """The roles served by in-process adapters; those cannot be shared between processes."""
        roles = []
        if not self.kafka_bootstrap_servers:
            roles.append("bus")
        if not self.postgres_dsn:
            roles.append("store")
        if not self.redis_url:
            roles.append("cache")
        return roles

    @property
    def worker_in_process(self) -> bool:
        """Whether this process runs the reference worker: by default only when the bus is in-process."""
        if self.run_worker_in_process is None:
            return not self.kafka_bootstrap_servers
        return self.run_worker_in_process

    def validate(self) -> None:
        if self.gateway_cors_credentials and "*" in self.gateway_cors_origins:
            raise SettingsError(
                "GATEWAY_CORS_CREDENTIALS: cannot be true while GATEWAY_CORS_ORIGINS is '*'; "
                "list the allowed origins instead")
        if self.gateway_workers > 1 and self.embedded_roles:
            raise SettingsError(
                f"GATEWAY_WORKERS: the embedded mode runs one worker process, got {self.gateway_workers}; "
                f"in-process adapters ({', '.join(self.embedded_roles)}) are not shared between processes. "
                "Set KAFKA_BOOTSTRAP_SERVERS, POSTGRES_DSN and REDIS_URL to run several workers")


def _parse(name: str, raw: str, meta: Mapping[str, Any]) -> Any:
    kind = meta["kind"]
    if kind == "int":
        return parse_int(name, raw, meta["minimum"])
    if kind == "float":
        return parse_float(name, raw, meta["minimum"])
    if kind == "bool":
        return parse_bool(name, raw)
    if kind == "list":
        return parse_list(name, raw)
    if meta["choices"]:
        return parse_choice(name, raw, meta["choices"])
    return raw.strip()


def load_settings(environ: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
    """Build `Settings` from an environment mapping (default `os.environ`).

    Values in `environ` may be strings (as in the environment) or already-typed values (as tests pass
    them to `create_app`). Raises `SettingsError` naming the first setting that cannot be used.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        name = f.name.upper()
        for candidate in (name, *f.metadata["aliases"]):
            if candidate in environ and environ[candidate] is not None:
                raw = environ[candidate]
                values[f.name] = _parse(name, raw, f.metadata) if isinstance(raw, str) else raw
                break
    values.update(overrides)
    settings = Settings(**values)
    settings.validate()
    return settings


def describe(settings: Settings) -> dict[str, Any]:
    """The settings as a mapping safe to log: secrets are replaced by whether they are set."""
    out = {}
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        out[f.name.upper()] = ("set" if value else "unset") if f.metadata["secret"] else value
    return out
