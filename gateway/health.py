"""Health of the components in use, probed in parallel with a time bound each."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable

from .runtime import Runtime

CHECK_TIMEOUT_SECONDS = 3.0


def _components(runtime: Runtime) -> dict[str, Callable[[], str]]:
    """Component name -> probe. Real backends are named after the server, in-process ones by role."""
    names = {"memory": None, "kafka": "kafka", "postgres": "postgres", "redis": "redis"}
    out = {}
    for role, adapter in (("bus", runtime.bus), ("store", runtime.store), ("cache", runtime.cache)):
        out[names.get(adapter.kind) or role] = adapter.check
    return out


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def overall_health(runtime: Runtime, timeout: float = CHECK_TIMEOUT_SECONDS) -> dict[str, Any]:
    checks = _components(runtime)
    kinds = {"bus": runtime.bus.kind, "store": runtime.store.kind, "cache": runtime.cache.kind}
    components: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="health")
    futures = {name: pool.submit(check) for name, check in checks.items()}
    wait(futures.values(), timeout=timeout)
    # Never wait for a hung probe: its thread ends (or times out) on its own.
    pool.shutdown(wait=False, cancel_futures=True)
    for name, future in futures.items():
        if not future.done():
            components[name] = {"status": "down", "detail": f"TimeoutError: no answer within {timeout:g}s"}
        elif future.exception() is not None:
            components[name] = {"status": "down", "detail": _describe(future.exception())}
        else:
            components[name] = {"status": "ok", "backend": kinds.get(name, name), "info": future.result()}
    components["worker"] = {"status": "ok", "backend": "in-process" if runtime.worker else "external"}
    status = "down" if any(c["status"] == "down" for c in components.values()) else "ok"
    return {"status": status, "mode": runtime.mode, "components": components,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1)}
