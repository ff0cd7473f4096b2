"""``python -m central.outbound``: run one mail worker until SIGTERM or Ctrl-C (configured by VAORA_*)."""

from __future__ import annotations

import os
import signal
import sys
import threading

from central.outbound.worker import run_worker
from protocols.logs import configure_logging


def main() -> int:
    """Run the worker; returns the exit code."""
    configure_logging("mail-worker", os.environ.get("VAORA_LOG_LEVEL", "INFO"))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run_worker(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
