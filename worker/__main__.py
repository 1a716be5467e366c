"""`python -m worker`: the reference worker as its own process, on the bus the settings name.

Against Kafka it consumes `conversation.inbound` in group `conversation-worker`, so several worker
processes share the partitions. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import signal
import sys

from gateway.runtime import build_bus
from gateway.settings import SettingsError, load_settings

from .reference import ReferenceWorker

log = logging.getLogger("worker")


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"worker: invalid setting: {exc}\n")
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.kafka_bootstrap_servers:
        sys.stderr.write("worker: KAFKA_BOOTSTRAP_SERVERS is not set; in the embedded mode the gateway "
                         "runs the reference worker itself\n")
        return 2
    bus = build_bus(settings)
    worker = ReferenceWorker.from_settings(bus, settings)

    def stop(signum, frame):
        log.info("reference worker stopping (signal %s)", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("reference worker consuming %s", settings.conversation_inbound)
    worker.run()
    bus.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
