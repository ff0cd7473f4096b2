"""The live hub's wake-up from PostgreSQL: ``LISTEN vaora_live`` on a connection of its own.

The triggers of migration m0014 ``NOTIFY vaora_live`` when a transaction changing a table the hub reads commits,
whichever process wrote it. :class:`Listener` runs one thread that holds a dedicated autocommit connection,
LISTENs, and sets an event at each notification; the hub waits on that event instead of polling every 100 ms.
While the listener is not connected (start-up, a dropped connection: it reconnects with a back-off), ``listening``
is False and the hub polls as it does on SQLite, so a lost notification connection costs latency, never events.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import peewee

log = logging.getLogger(__name__)

CHANNEL = "vaora_live"
_POOL_ONLY = frozenset({"max_connections", "stale_timeout", "timeout", "timeout_seconds"})


def connect_kwargs(db: peewee.Database) -> dict[str, Any] | None:
    """The psycopg keyword arguments of ``db``'s connections, or None when ``db`` is not PostgreSQL."""
    if not isinstance(db, peewee.PostgresqlDatabase):
        return None
    params = {key: value for key, value in db.connect_params.items() if key not in _POOL_ONLY}
    return {"dbname": db.database, **params}


class Listener:
    """One thread LISTENing on :data:`CHANNEL`; ``wake`` is set at every notification (and at each (re)connect,
    for what was committed while nobody listened)."""

    def __init__(self, kwargs: dict[str, Any], wake: threading.Event, stop: threading.Event) -> None:
        self.kwargs = kwargs
        self.wake = wake
        self.stop = stop
        self.listening = False
        self.thread = threading.Thread(target=self._run, name="live-listener", daemon=True)

    def start(self) -> Listener:
        """Start the thread."""
        self.thread.start()
        return self

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (after ``stop`` is set it ends within a second)."""
        self.thread.join(timeout)

    def _run(self) -> None:
        import psycopg

        backoff = 0.5
        while not self.stop.is_set():
            try:
                with psycopg.connect(**self.kwargs, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    backoff = 0.5
                    self.wake.set()
                    while not self.stop.is_set():
                        for _notify in conn.notifies(timeout=1.0):
                            self.wake.set()
            except psycopg.Error:
                log.warning("live listener: PostgreSQL connection lost; polling until it is back", exc_info=True)
            finally:
                self.listening = False
            self.stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)
