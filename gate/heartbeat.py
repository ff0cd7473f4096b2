"""The gate's heartbeat: every ``[mqtt] heartbeat_seconds`` a :class:`~protocols.payloads.Heartbeat` (QoS 0).

It carries the cache's change sequence (central's dashboard flags gates that lag behind), the outbox backlog,
the emergency state, the software version, the gate's own clock (``sent_at``: central compares it with its
receive time) and the gate's estimated offset to central's clock (:mod:`gate.clock`). A heartbeat that cannot
be sent (broker away) is skipped, not queued: the next one says the same, newer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from protocols.payloads import Heartbeat, encode

log = logging.getLogger(__name__)


class HeartbeatLoop:
    """A background thread calling ``build()`` and ``publish(payload)`` every ``interval_s`` seconds."""

    def __init__(self, build: Callable[[], Heartbeat], publish: Callable[[bytes], bool],
                 interval_s: float = 15.0) -> None:
        self._build = build
        self._publish = publish
        self.interval_s = interval_s
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent); the first heartbeat goes out after one interval."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> bool:
        """Build and publish one heartbeat now; True when it was handed to the broker."""
        try:
            ok = bool(self._publish(encode(self._build())))
        except Exception:
            log.exception("heartbeat failed")
            return False
        if ok:
            self.sent += 1
        return ok

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()
