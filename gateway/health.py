"""Health of the components in use, probed in parallel with a time bound each."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable

import requests

from .runtime import Runtime

CHECK_TIMEOUT_SECONDS = 3.0
# Optional HTTP dependencies: when failing they make the gateway degraded, not down.
OPTIONAL = {"telemetry_worker": "telemetry_health_url", "delegation_gateway": "delegation_health_url"}


def _http_probe(url: str, timeout: float) -> Callable[[], str]:
    def probe() -> str:
        response = requests.get(url, timeout=timeout)
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"{url} answered {response.status_code}")
        return f"HTTP {response.status_code}"

    return probe


def _checks(runtime: Runtime, timeout: float) -> dict[str, tuple[str | None, Callable[[], str]]]:
    """Component name -> (backend, probe). Real backends are named after the server, in-process ones
    by their role; optional HTTP dependencies have no backend."""
    checks: dict[str, tuple[str | None, Callable[[], str]]] = {}
    for role, adapter in (("bus", runtime.bus), ("store", runtime.store), ("cache", runtime.cache)):
        checks[role if adapter.kind == "memory" else adapter.kind] = (adapter.kind, adapter.check)
    for name, setting in OPTIONAL.items():
        url = getattr(runtime.settings, setting)
        if url:
            checks[name] = (None, _http_probe(url, timeout))
    return checks


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def overall_health(runtime: Runtime, timeout: float = CHECK_TIMEOUT_SECONDS) -> dict[str, Any]:
    """The health body of spec/v1-api.md: every probe in parallel, none waited for past `timeout`."""
    checks = _checks(runtime, timeout)
    components: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="health")
    futures = {name: pool.submit(probe) for name, (_, probe) in checks.items()}
    wait(futures.values(), timeout=timeout)
    # Never wait for a hung probe: its thread ends (or times out) on its own.
    pool.shutdown(wait=False, cancel_futures=True)
    for name, future in futures.items():
        backend = checks[name][0]
        if not future.done():
            components[name] = {"status": "down", "detail": f"TimeoutError: no answer within {timeout:g}s"}
        elif future.exception() is not None:
            components[name] = {"status": "down", "detail": _describe(future.exception())}
        else:
            components[name] = {"status": "ok", **({"backend": backend} if backend else {}),
                                "info": future.result()}
    components["worker"] = {"status": "ok", "backend": "in-process" if runtime.worker else "external"}
    # Open streams and waiting bridge calls of this process: a client that went away leaves this
    # count within one heartbeat.
    components["hub"] = {"status": "ok", "subscribers": runtime.hub.subscriber_count()}
    failing = {name for name, c in components.items() if c["status"] == "down"}
    status = "down" if failing - set(OPTIONAL) else "degraded" if failing else "ok"
    return {"status": status, "mode": runtime.mode, "components": components,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1)}
