"""Outbox delivery: publish every undelivered check-in until central acknowledges it.

A broker PUBACK only means the broker has the message; a check-in is delivered when central's ingest worker
stored it and published an :class:`~protocols.payloads.Ack` with status ``stored`` or ``duplicate``.
Until then the row is re-published every ``resend_s`` seconds (central inserts once per check-in id, so
repeats are harmless). An ack for an unknown check-in id is logged and ignored. An ack ``rejected`` (a nack:
central cannot store the check-in and dead-lettered it) settles the row too, logged with its reason, except for
the reasons in :data:`RESENT_AFTER_REJECTION`, which central may cure without the gate.

A passage recorded while the gate was disconnected is also published on the site's check-in topic when it is
first sent after (re)connecting: the gate's own fan-out at the time was only queued in paho's memory, which a
restart of the gate during the outage loses, and then the other gates of the site would never learn the code
was used (see benchmarks/passback_window.py). Receivers record a passage once, so a repeat is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from protocols.payloads import Ack, CheckIn, Outcome, PayloadError, decode, encode_site_checkin
from protocols.reasons import Reason

from .store import GateStore, OutboxRow
from .transport import Transport

log = logging.getLogger(__name__)

RESENT_AFTER_REJECTION = frozenset({Reason.UNKNOWN_GATE.value})
"""Rejections that are no fault of the check-in: the gate is not registered at central yet. Such a row stays
pending and is re-sent as before, and is stored once an administrator registers the gate."""


class DeliveryLoop:
    """A background thread draining the outbox through the transport."""

    def __init__(
        self,
        cache: GateStore,
        transport: Transport,
        resend_s: float = 30.0,
        poll_s: float = 0.5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cache = cache
        self.transport = transport
        self.resend_s = resend_s
        self.poll_s = poll_s
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delivered = threading.Condition()

    def start(self) -> None:
        """Start the delivery thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-delivery", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        """True while the delivery thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def kick(self) -> None:
        """Look at the outbox now (a new check-in was written, or the broker came back)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the delivery thread; undelivered rows stay in the outbox for the next start."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def send_due(self) -> int:
        """Publish every row that was never sent or was sent ``resend_s`` ago; return how many were sent."""
        if not self.transport.is_connected:
            return 0
        sent = 0
        online_since = self.transport.online_since
        for row in self.cache.outbox_due(self._clock(), self.resend_s):
            if not self.transport.publish_checkin(row.payload):
                break
            self.cache.mark_sent(row.checkin_id, self._clock())
            if row.attempts:
                log.info("check-in re-published checkin_id=%s attempt=%d", row.checkin_id, row.attempts + 1)
            elif online_since is not None and row.created_at < online_since:
                self._fan_out_offline_passage(row)
            sent += 1
        return sent

    def _fan_out_offline_passage(self, row: OutboxRow) -> None:
        """Publish a passage recorded before this connection to the site (see the module docstring)."""
        publish = self.transport.publish_site_checkin
        try:
            checkin = decode(CheckIn, row.payload)
        except PayloadError:
            return  # never fanned out; central's ack path reports it
        entered = checkin.allowed and checkin.outcome is Outcome.ENTERED and checkin.credential
        if entered and publish(encode_site_checkin(checkin)):
            log.info("offline passage fanned out to the site checkin_id=%s", row.checkin_id)

    def handle_ack(self, ack: Ack) -> None:
        """Apply central's acknowledgement of one check-in."""
        checkin_id = str(ack.checkin_id)
        if ack.status == "rejected":
            if ack.reason in RESENT_AFTER_REJECTION:
                log.error("check-in rejected by central, re-sent later checkin_id=%s reason=%s", checkin_id,
                          ack.reason)
                return
            # A poison message: central dead-lettered it (logged with its topic and reason) and would refuse it
            # again. It is settled like a delivered row (kept ``keep_delivered_hours`` as evidence, then pruned)
            # instead of being re-sent every ``resend_s`` for ever.
            log.error("check-in rejected by central, not re-sent checkin_id=%s reason=%s", checkin_id, ack.reason)
        result = self.cache.mark_delivered(checkin_id, self._clock())
        if result is None:
            log.warning("ack for unknown check-in ignored checkin_id=%s", checkin_id)
            return
        if result:
            log.info("check-in delivered checkin_id=%s status=%s", checkin_id, ack.status)
        with self._delivered:
            self._delivered.notify_all()

    def flush(self, timeout: float) -> bool:
        """Send everything pending now, wait up to ``timeout`` s for acks; True when the outbox is empty."""
        deadline = time.monotonic() + timeout
        if self.transport.is_connected:
            for row in self.cache.outbox_due(self._clock(), 0.0, limit=1000):
                if not self.transport.publish_checkin(row.payload):
                    break
                self.cache.mark_sent(row.checkin_id, self._clock())
        with self._delivered:
            while self.cache.outbox_pending():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.transport.is_connected:
                    return False
                self._delivered.wait(min(remaining, 0.1))
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.send_due()
            except Exception:
                log.exception("outbox delivery pass failed; retrying")
            self._wake.wait(self.poll_s)
            self._wake.clear()
