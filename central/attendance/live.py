"""Live updates for the staff pages: one poller thread per web process, fanned out to server-sent events.

The database is the shared source of the events: the ingest worker (or another web process, or a CLI command)
writes check-ins and gate state from another process, and every web process learns of them by reading the
database, so a check-in appears on dashboards connected to any process (``tests/central/test_live_two_processes.py``
runs two servers on one database). On PostgreSQL the poller is woken by ``NOTIFY vaora_live`` (triggers of
migration m0014, :mod:`central.attendance.live_notify`) and otherwise polls every ``slow_interval``; on SQLite,
or while the notification connection is down, it polls every ``interval``. What a process keeps in memory (its
subscribers, a ring of recent events, its cursors) is rebuilt from the database: a browser that reconnects to
another process gets ``reset`` (the epoch differs) and reloads its state.

:class:`LiveHub` runs ONE poller thread that every ``interval`` seconds (0.1 s)
reads check-ins stored since the last one it saw, the active gate alarms (a forced door, an emergency: pushed
within a second of the gate reporting them) and conflicts flagged since the last poll, and every ``slow_interval``
(1 s) the gates and the walk-ins awaiting approval; what changed becomes :class:`LiveEvent` s, put on every
subscriber's bounded queue. A subscriber whose queue is full (a slow or stalled client) is dropped, never the
server: its stream ends and the browser's EventSource reconnects with ``Last-Event-ID``; the hub replays what it
still holds (a ring of recent events) or tells the client to reload its state (``reset``).

Event ids are ``<epoch>-<n>`` (epoch: this hub's start) so an id from before a restart is recognised.
New check-ins are found by row id; with one ingest writer ids commit in order. On PostgreSQL, two writers
committing out of id order (ingest and a manual mark in the same 100 ms) could hide the lower id from the
stream (the page's state, reloaded on ``reset``, and the exports still count it).

The web server must give every open stream its own thread: ``vaora-central serve`` runs werkzeug with
``threaded=True`` (a thread per connection), measured with 20 streams in ``benchmarks/dashboard_latency.py``.
:func:`sse_stream` turns a subscription into the ``text/event-stream`` body, with keepalive comments.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import peewee
from flask import Flask, current_app

from central.attendance import services as attendance
from central.attendance.live_notify import Listener, connect_kwargs
from central.core.context import utc_now
from central.core.db import database, tuples
from central.core.states import WalkinState
from central.desk.models import Walkin
from central.gates import alarms, conflicts
from central.gates.models import Gate
from central.gates.site_links import offline_sites

log = logging.getLogger(__name__)

CHECKINS = "checkins"
GATE = "gate"
WALKINS = "walkins"
ALARMS = "alarms"
CONFLICTS = "conflicts"
RESET = "reset"
HELLO = "hello"


@dataclass(frozen=True)
class LiveEvent:
    """One thing that happened: ``kind`` (checkins, gate, walkins), for one meeting (or all when None)."""

    seq: int
    kind: str
    data: Any
    meeting_id: int | None = None
    _wire: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def id_under(self, epoch: str) -> str:
        """The SSE ``id:`` of this event under the hub's ``epoch``."""
        return f"{epoch}-{self.seq}"

    def wire(self, epoch: str) -> str:
        """The event in SSE wire format, its id under the hub's ``epoch``: encoded once, then the same text goes to
        every subscriber (a dashboard event reaches hundreds of streams)."""
        text = self._wire.get(epoch)
        if text is None:
            text = format_event(self.kind, self.data, self.id_under(epoch) if self.seq else None)
            self._wire[epoch] = text
        return text


@dataclass
class Subscription:
    """One connected client: its filter and bounded queue; ``dropped`` is set when it fell behind."""

    meeting_id: int | None
    kinds: frozenset[str]
    queue: queue.Queue[LiveEvent | None]
    dropped: bool = False
    created: float = field(default_factory=time.monotonic)

    def wants(self, event: LiveEvent) -> bool:
        """True when this client asked for ``event``."""
        if event.kind not in self.kinds:
            return False
        return event.meeting_id is None or self.meeting_id is None or event.meeting_id == self.meeting_id


class LiveHub:
    """The per-process poller and fan-out (see the module docstring). Thread-safe."""

    def __init__(
        self,
        *,
        interval: float = 0.1,
        slow_interval: float = 1.0,
        queue_size: int = 500,
        replay_size: int = 5000,
        clock: Callable[[], datetime] = utc_now,
        listen: bool = True,
    ) -> None:
        self.interval = interval
        self.listen = listen
        self.slow_interval = slow_interval
        self.queue_size = queue_size
        self.clock = clock
        self.epoch = secrets.token_hex(4)
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self._replay: deque[LiveEvent] = deque(maxlen=replay_size)
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._listener: Listener | None = None
        self.last_checkin_id: int | None = None
        self._gates: dict[str, dict[str, Any]] = {}
        self._walkins: dict[int, tuple[tuple[int, str], ...]] = {}
        self._alarms: tuple[tuple[int, bool], ...] | None = None
        self.last_conflict_id: int | None = None
        self._next_slow = 0.0
        self.dropped_total = 0

    # --- subscribers ---------------------------------------------------------------------------------------

    def event_id(self, event: LiveEvent) -> str:
        """The SSE ``id:`` of an event."""
        return event.id_under(self.epoch)

    def subscribe(self, meeting_id: int | None, kinds: frozenset[str], *, last_event_id: str | None = None,
                  after_checkin: int | None = None) -> Subscription:
        """Register a client and start the poller if needed.

        With ``last_event_id`` (a reconnect) the events after it still held are queued first, or a ``reset``
        event when they are gone. Otherwise, with ``after_checkin`` (the check-in cursor of the state the
        page was rendered with), check-ins stored since then are queued first, so none falls in between.
        """
        self.ensure_started()
        sub = Subscription(meeting_id, kinds, queue.Queue(self.queue_size))
        with self._lock:
            backlog: list[LiveEvent] = []
            if last_event_id:
                replayable = self._replay_after(last_event_id)
                if replayable is None:
                    backlog.append(LiveEvent(0, RESET, {"reason": "gap"}, None))
                else:
                    backlog.extend(e for e in replayable if sub.wants(e))
            elif after_checkin is not None and CHECKINS in kinds:
                if self.last_checkin_id is None:  # idle hub: the poller resumes from this client's cursor
                    self.last_checkin_id = after_checkin
                else:
                    backlog.extend(self._checkins_between(after_checkin, self.last_checkin_id, meeting_id))
            if self.last_checkin_id is None:  # idle hub: what is stored from now on is news
                self.last_checkin_id = attendance.last_checkin_id()
            if ALARMS in kinds and not last_event_id:  # where alarms stand now: none raised since the page is lost
                if self._alarms is None:
                    self._alarms = alarms.active_signature()
                backlog.append(LiveEvent(0, ALARMS, alarms.active_alarms(), None))
            for event in backlog[: self.queue_size - 1]:
                sub.queue.put_nowait(event)
            if len(backlog) >= self.queue_size:
                sub.queue.put_nowait(LiveEvent(0, RESET, {"reason": "backlog"}, None))
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a client (its stream ended)."""
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    @property
    def subscriber_count(self) -> int:
        """How many clients are connected."""
        with self._lock:
            return len(self._subscribers)

    def _replay_after(self, last_event_id: str) -> list[LiveEvent] | None:
        epoch, _, number = last_event_id.partition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        seq = int(number)
        if seq > self._seq:
            return None
        if self._replay and seq < self._replay[0].seq - 1:
            return None  # fell out of the ring
        return [event for event in self._replay if event.seq > seq]

    def _checkins_between(self, after: int, upto: int, meeting_id: int | None) -> list[LiveEvent]:
        if after >= upto:
            return []
        rows = [r for r in attendance.checkins_after(after, limit=self.queue_size) if r.id <= upto]
        described = [c for c in attendance.describe_checkins(rows) if meeting_id is None or c["meeting_id"] ==
                     meeting_id]
        return [LiveEvent(0, CHECKINS, described, meeting_id)] if described else []

    # --- publishing ----------------------------------------------------------------------------------------

    def publish(self, kind: str, data: Any, meeting_id: int | None = None) -> LiveEvent:
        """Give an event an id, keep it for replay and put it on every interested subscriber's queue."""
        with self._lock:
            return self._publish_locked(kind, data, meeting_id)

    def _publish_locked(self, kind: str, data: Any, meeting_id: int | None) -> LiveEvent:
        self._seq += 1
        event = LiveEvent(self._seq, kind, data, meeting_id)
        self._replay.append(event)
        for sub in list(self._subscribers):
            if not sub.wants(event):
                continue
            try:
                sub.queue.put_nowait(event)
            except queue.Full:
                sub.dropped = True
                self._subscribers.remove(sub)
                self.dropped_total += 1
                log.warning("live client dropped: its queue is full (slow client) meeting=%s", sub.meeting_id)
        return event

    # --- the poller ----------------------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the poller thread once (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            kwargs = connect_kwargs(database.obj) if self.listen else None
            if kwargs is not None and (self._listener is None or not self._listener.thread.is_alive()):
                self._listener = Listener(kwargs, self._wake, self._stop).start()
            self._thread = threading.Thread(target=self._run, name="live-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the poller thread and end every stream."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.join(5)
        with self._lock:
            for sub in self._subscribers:
                sub.dropped = True
                with contextlib.suppress(queue.Full):
                    sub.queue.put_nowait(None)
            self._subscribers.clear()

    @property
    def notified(self) -> bool:
        """True while PostgreSQL notifications wake the poller (it then polls only every ``slow_interval``)."""
        return self._listener is not None and self._listener.listening

    def _run(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            started = time.monotonic()
            self._wake.clear()  # a notification from now on calls for another poll
            try:
                database.connect(reuse_if_open=True)
                self.poll_once()
                backoff = self.interval
            except peewee.PeeweeException:
                log.exception("live poller: database error; retrying in %.1f s", backoff)
                if not database.is_closed():
                    database.close()
                backoff = min(backoff * 2, 5.0)
                self._stop.wait(backoff)
                continue
            except Exception:  # never let the poller die: the dashboards would silently freeze
                log.exception("live poller failed; continuing")
            # At least ``interval`` between polls (a burst of notifications makes one poll per interval) ...
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
            if self.notified:  # ... and, while notified, none until a notification or the slow round is due
                self._wake.wait(max(0.0, self.slow_interval - (time.monotonic() - started)))
        if not database.is_closed():
            database.close()

    def poll_once(self) -> None:
        """Read what changed since the last poll and publish it (the thread calls this; tests may too).

        With nobody connected the hub idles: it forgets its cursors, and the next client's page state (or
        the database's latest check-in) is where it resumes.
        """
        with self._lock:
            if not self._subscribers:
                if self.last_checkin_id is not None:  # going idle: nothing is recorded from now on, so an id
                    self.epoch = secrets.token_hex(4)  # handed out before cannot be resumed (-> reset)
                    self._replay.clear()
                self.last_checkin_id = None
                self._gates.clear()
                self._walkins.clear()
                self._alarms = None
                self.last_conflict_id = None
                self._next_slow = 0.0
                return
            if self.last_checkin_id is None:
                self.last_checkin_id = attendance.last_checkin_id()
        self._poll_checkins()
        self._poll_alarms()
        self._poll_conflicts()
        now = time.monotonic()
        if now >= self._next_slow:
            self._next_slow = now + self.slow_interval
            self._poll_gates()
            self._poll_walkins()

    def _poll_checkins(self) -> None:
        while True:
            start = self.last_checkin_id
            if start is None:
                return
            rows = attendance.checkins_after(start)
            if not rows:
                return
            by_meeting: dict[int | None, list[dict[str, Any]]] = {}
            for item in attendance.describe_checkins(rows):
                by_meeting.setdefault(item["meeting_id"], []).append(item)
            with self._lock:  # cursor and publication move together: a subscriber's backfill never overlaps
                if self.last_checkin_id != start:
                    continue  # reset meanwhile (idle); read again from the new cursor
                self.last_checkin_id = rows[-1].id
                for meeting_id, items in by_meeting.items():
                    self._publish_locked(CHECKINS, items, meeting_id)
            if len(rows) < 1000:
                return

    def _poll_alarms(self) -> None:
        """Publish the active alarms (every page's whole list) when they changed: raised, cleared or acknowledged."""
        signature = alarms.active_signature()
        if signature == self._alarms:
            return
        self._alarms = signature
        self.publish(ALARMS, alarms.active_alarms())

    def _poll_conflicts(self) -> None:
        """Publish, per meeting, that conflicts were flagged (the dashboard then reloads its state)."""
        if self.last_conflict_id is None:
            self.last_conflict_id = conflicts.last_conflict_id()
            return
        latest = conflicts.last_conflict_id()
        if latest <= self.last_conflict_id:
            return
        for meeting_id, count in conflicts.meetings_with_conflicts_after(self.last_conflict_id).items():
            self.publish(CONFLICTS, {"meeting_id": meeting_id, "new": count}, meeting_id)
        self.last_conflict_id = latest

    def _poll_gates(self) -> None:
        now = self.clock()
        gates = list(Gate.select())
        current = attendance.current_change_seqs(gate.site_id for gate in gates)
        offline = offline_sites()
        seen = set()
        for gate in gates:
            state = attendance.gate_state(gate, now, current[gate.site_id], site_offline=gate.site_id in offline)
            seen.add(gate.gate_id)
            if self._gates.get(gate.gate_id) != state:
                self._gates[gate.gate_id] = state
                self.publish(GATE, state)
        for gone in set(self._gates) - seen:
            del self._gates[gone]

    def _poll_walkins(self) -> None:
        pending: dict[int, list[tuple[int, str]]] = {}
        rows = tuples(Walkin.select(Walkin.id, Walkin.meeting, Walkin.status).where(
            Walkin.status == WalkinState.PENDING
        ))
        for walkin_id, meeting_id, status in rows:
            pending.setdefault(meeting_id, []).append((walkin_id, status))
        signatures = {meeting_id: tuple(sorted(items)) for meeting_id, items in pending.items()}
        for meeting_id in set(signatures) | set(self._walkins):
            if signatures.get(meeting_id) != self._walkins.get(meeting_id):
                self.publish(WALKINS, {"meeting_id": meeting_id, "pending": [i for i, _ in
                                                                              signatures.get(meeting_id, ())]},
                             meeting_id)
        self._walkins = signatures


def get_hub(app: Flask | None = None) -> LiveHub:
    """Return the app's hub (created on first use; one per web process)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    hub = app.extensions.get("vaora_live")
    if hub is None:
        with _HUB_LOCK:
            hub = app.extensions.get("vaora_live")
            if hub is None:
                hub = LiveHub(**app.config.get("VAORA_LIVE_OPTIONS", {}))
                app.extensions["vaora_live"] = hub
    return hub


_HUB_LOCK = threading.Lock()


def format_event(kind: str, data: Any, event_id: str | None = None) -> str:
    """One server-sent event in wire format (data as one line of JSON)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


def sse_stream(hub: LiveHub, sub: Subscription, *, keepalive: float = 15.0, retry_ms: int = 1000) -> Iterator[str]:
    """The body of a ``text/event-stream`` response for ``sub``; ends when the client is dropped."""
    try:
        yield f"retry: {retry_ms}\n" + format_event(HELLO, {"epoch": hub.epoch})
        while not sub.dropped:
            try:
                event = sub.queue.get(timeout=keepalive)
            except queue.Empty:
                yield ": keepalive\n\n"
                continue
            if event is None:
                break
            yield event.wire(hub.epoch)
    finally:
        hub.unsubscribe(sub)
