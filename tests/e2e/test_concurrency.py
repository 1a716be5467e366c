"""One gevent worker serves many waiting legacy calls at once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from clients import legacy

CALLS = 20
CHUNK_DELAY_S = 0.5  # three chunks: each call waits about 1.5 s for its reply


def test_twenty_concurrent_api_message_calls_overlap_on_one_worker(start_gateway):
    server = start_gateway({"WORKER_REPLY_DELAY_MS": str(int(CHUNK_DELAY_S * 1000))}, workers=1)
    one_call = CHUNK_DELAY_S * 3

    def call(i: int):
        return legacy(server.url, "/api_message", {"message": f"call {i}"})

    started = time.monotonic()
    with ThreadPoolExecutor(CALLS) as pool:
        responses = list(pool.map(call, range(CALLS)))
    elapsed = time.monotonic() - started

    assert [r.status_code for r in responses] == [200] * CALLS
    # Every caller gets the answer to its own message, in its own new context.
    assert [r.json()["response"] for r in responses] == [f"Echo: call {i}" for i in range(CALLS)]
    assert len({r.json()["context_id"] for r in responses}) == CALLS
    # Served one after another this would take CALLS * one_call (30 s); concurrently about one_call.
    assert elapsed < one_call * 4, f"{CALLS} calls took {elapsed:.1f}s; one takes {one_call:.1f}s"
