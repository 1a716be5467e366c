"""Benchmark: legacy `/api_message` calls through the bridge, one after another vs. concurrently.

Starts an embedded-mode gateway under gunicorn (one gevent worker), measures N calls made serially
(the baseline, in this same run) and N calls made at once, and prints a table. With a reply delay per
chunk, concurrent calls should take about as long as one call, not N of them.

    .venv/bin/python benchmarks/bridge_concurrency.py [--calls 20] [--delay-ms 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from gateway_server import GatewayServer  # noqa: E402

KEY = "bench-key"


def call(url: str, i: int) -> float:
    started = time.monotonic()
    response = requests.post(f"{url}/api_message", json={"message": f"bench {i}"},
                             headers={"X-API-KEY": KEY}, timeout=60)
    response.raise_for_status()
    return time.monotonic() - started


def run(url: str, calls: int, parallel: int) -> tuple[float, list[float]]:
    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        latencies = list(pool.map(lambda i: call(url, i), range(calls)))
    return time.monotonic() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--delay-ms", type=int, default=100, help="reference worker delay per chunk")
    args = parser.parse_args()
    settings = {"LEGACY_API_KEY": KEY, "WORKER_REPLY_DELAY_MS": str(args.delay_ms), "LOG_LEVEL": "WARNING"}
    with GatewayServer(settings) as server:
        call(server.url, -1)  # warm up: the runtime starts on the first request
        rows = [("serial (baseline)", *run(server.url, args.calls, 1)),
                ("concurrent", *run(server.url, args.calls, args.calls))]
    print(f"{args.calls} calls, reply delay {args.delay_ms} ms per chunk, 1 gevent worker")
    print(f"{'mode':<20}{'total s':>10}{'calls/s':>10}{'p50 ms':>10}{'max ms':>10}{'speed-up':>10}")
    baseline = rows[0][1]
    for name, total, latencies in rows:
        print(f"{name:<20}{total:>10.2f}{len(latencies) / total:>10.1f}"
              f"{statistics.median(latencies) * 1000:>10.0f}{max(latencies) * 1000:>10.0f}"
              f"{baseline / total:>9.1f}x")


if __name__ == "__main__":
    main()
