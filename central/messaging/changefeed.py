"""The change feed: publishes central's change log to the gates over MQTT, in order, from a durable cursor.

The ``change`` table is the outbox: a change is stored in the same transaction as the data it describes, and
this worker publishes every stored change at QoS 1 on ``vaora/v1/central/changes``, strictly in sequence order.
Its cursor (the last sequence number the broker accepted) lives in the database, so after a restart it resumes
where it stopped; a change published twice is harmless because gates apply a sequence number once.

On PostgreSQL a sequence number can be taken by a transaction that commits later, or never (rolled back). The
feed therefore publishes only contiguous sequence numbers; a hole that stays open longer than ``hole_timeout``
is skipped, and the gates, seeing the gap, load a fresh snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import peewee

from central.core.changes import changes_since
from central.core.db import database
from central.messaging.models import FeedCursor
from protocols import payloads, topics
from protocols.mqtt import ClientSettings, TlsFiles, make_client

log = logging.getLogger(__name__)

FEED_NAME = "mqtt"
DEFAULT_CLIENT_ID = "vaora-central-changefeed"


class ChangeFeed:
    """Publish new changes to ``topics.CHANGES``; call :meth:`start` / :meth:`stop` or :meth:`run_forever`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        tls: TlsFiles | None = None,
        poll_s: float = 0.1,
        hole_timeout: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.poll_s = poll_s
        self.hole_timeout = hole_timeout
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hole_since: float | None = None
        self.published_seq = 0
        # A clean session: the feed only publishes, and its durable cursor (not the broker) says what is left.
        self.client = make_client(ClientSettings(client_id=client_id, username=username, password=password,
                                                 persistent=False, tls=tls))
        self.client.max_queued_messages_set(0)
        self.host, self.port = host, port

    def load_cursor(self) -> int:
        """Read where publishing stopped last time (the cursor row is made on first use)."""
        with database.connection_context():
            cursor, _ = FeedCursor.get_or_create(name=FEED_NAME)
            self.published_seq = cursor.seq
        return self.published_seq

    def start(self) -> None:
        """Connect in the background and start publishing."""
        self.load_cursor()
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="changefeed", daemon=True)
        self._thread.start()
        log.info("change feed started from seq=%d", self.published_seq)

    def stop(self) -> None:
        """Stop publishing and disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.client.disconnect()
        self.client.loop_stop()

    def run_forever(self, stop_event: threading.Event) -> None:
        """Run until ``stop_event`` is set."""
        self.start()
        try:
            stop_event.wait()
        finally:
            self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.publish_pending()
            except peewee.DatabaseError:
                log.exception("change feed: database error; retrying")
                if not database.is_closed():
                    database.close()
            except Exception:
                log.exception("change feed failed; retrying")

    def publish_pending(self) -> int:
        """Publish every change after the cursor that is contiguous (or whose hole timed out); return how many."""
        if not self.client.is_connected():
            return 0
        published = 0
        with database.connection_context():
            for change in changes_since(self.published_seq, limit=500):
                if change.seq != self.published_seq + 1 and not self._hole_expired(change.seq):
                    break
                info = self.client.publish(topics.CHANGES, payloads.encode(change), qos=1)
                info.wait_for_publish(timeout=10)
                if not info.is_published():
                    log.warning("change feed: broker did not accept seq=%d; will retry", change.seq)
                    break
                self.published_seq = change.seq
                self._hole_since = None
                published += 1
            if published:
                FeedCursor.update(seq=self.published_seq).where(FeedCursor.name == FEED_NAME).execute()
        return published

    def _hole_expired(self, next_seq: int) -> bool:
        now = self._monotonic()
        if self._hole_since is None:
            self._hole_since = now
            return False
        if now - self._hole_since < self.hole_timeout:
            return False
        log.warning("change feed: seq %d..%d never committed; skipping (gates will resync)",
                    self.published_seq + 1, next_seq - 1)
        return True
