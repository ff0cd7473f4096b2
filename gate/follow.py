"""Following central after the snapshot: the change stream, gap detection and background snapshot refetch.

Central publishes the changes of the gate's site on ``vaora/v1/sites/<site>/changes`` (QoS 1) in sequence order,
each with ``prev``, the ``seq`` of the site's previous change; an older central publishes every change on
``vaora/v1/central/changes`` without ``prev`` (a gate subscribes to both, so it works with either). The gate
applies each change exactly once (:meth:`gate.store.GateStore.apply_change`):

- ``seq <= cache.seq``: a repeat (QoS 1 redelivery, the same change on both streams, or already covered by a
  snapshot): ignored;
- ``prev <= cache.seq`` (without ``prev``: ``seq == cache.seq + 1``): applied, the cache advances to ``seq`` (and
  any buffered successors are applied after it);
- ``prev > cache.seq`` (without ``prev``: ``seq > cache.seq + 1``): a gap. The change is kept in a small buffer
  (the missing one may still arrive out of order) and a fresh snapshot is requested from
  :class:`SnapshotRefresher`, which fetches it in its own thread, retrying with backoff while central is
  unreachable. Scans keep being decided from the old cache.

A payload that is not a valid :class:`~protocols.payloads.Change` (a ``prev`` or ``seq`` that is not a number,
negative, or a ``prev`` not below ``seq``) is logged, counted in :attr:`ChangeFollower.dropped` and dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from protocols.payloads import Change, PayloadError, Snapshot, decode

from .config import CentralSection
from .store import ChangeResult, GateStore, SnapshotSource
from .sync import SyncError

log = logging.getLogger(__name__)

MAX_BUFFERED = 1000


class ChangeFollower:
    """Applies central's change stream to the cache in order; asks for a snapshot when changes are missing.

    ``request_snapshot``: called (from the caller's thread; it must not block) when a gap is seen. ``site_id``: the
    gate's site; a meeting that no longer has a venue there is dropped from the cache with its delegates.
    Thread-safe: changes come from paho's network thread, snapshots from the refresher's.
    """

    def __init__(
        self,
        cache: GateStore,
        request_snapshot: Callable[[], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_buffered: int = MAX_BUFFERED,
        site_id: str | None = None,
    ) -> None:
        self.cache = cache
        self.site_id = site_id
        self.request_snapshot = request_snapshot
        self._clock = clock
        self.max_buffered = max_buffered
        self._lock = threading.RLock()
        self._loading = threading.Lock()
        self._buffer: dict[int, Change] = {}
        self.applied = 0
        self.repeated = 0
        self.gaps = 0
        self.dropped = 0
        self._applied_cond = threading.Condition(self._lock)

    def handle_payload(self, raw: bytes) -> ChangeResult | None:
        """Decode one message of the change topic and handle it; None when the payload was dropped."""
        try:
            change = decode(Change, raw)
        except PayloadError as exc:
            with self._lock:
                self.dropped += 1
            log.warning("bad change dropped reason=%s detail=%s size=%d", exc.reason.value, exc.detail[:200],
                        len(raw))
            return None
        return self.handle(change)

    def handle(self, change: Change) -> ChangeResult:
        """Apply ``change`` if it is the next one; buffer it and request a snapshot after a gap."""
        with self._lock:
            result = self.cache.apply_change(change, self._clock(), self.site_id)
            if result is ChangeResult.APPLIED:
                self.applied += 1
                log.info("change applied seq=%d kind=%s", change.seq, change.body.kind)
                self._drain()
                self._applied_cond.notify_all()
            elif result is ChangeResult.REPEATED:
                self.repeated += 1
                log.debug("repeated change ignored seq=%d cache_seq=%d", change.seq, self.cache.seq)
            else:
                self.gaps += 1
                if len(self._buffer) < self.max_buffered:
                    self._buffer[change.seq] = change
                log.warning("change stream gap seq=%d prev=%s cache_seq=%d; requesting a snapshot", change.seq,
                            change.prev, self.cache.seq)
        if result is ChangeResult.GAP:
            self.request_snapshot()
        return result

    def load_snapshot(self, snapshot: Snapshot | SnapshotSource) -> bool:
        """Load a fetched snapshot unless the cache is already further; then apply buffered changes.

        ``snapshot``: a decoded :class:`Snapshot` or a stream (:class:`gate.sync.SnapshotStream`); a stream
        that turns out bad raises (SyncError) and leaves the cache as it was. The entries are staged without
        this follower's lock, so changes keep being applied while a long stream downloads (they arrive on the
        MQTT network thread, which also carries acks and the site's check-ins); the swap happens under it,
        unless changes applied meanwhile took the cache past the snapshot. Returns True when it was loaded.
        After loading, a gap that is still open (buffered changes beyond the snapshot) requests another
        snapshot.
        """
        with self._loading:  # one snapshot at a time
            staged = None
            if snapshot.seq >= self.cache.seq:
                staged = self.cache.stage_snapshot(snapshot)
            with self._lock:
                current = self.cache.seq
                loaded = staged is not None and staged.seq >= current
                if loaded:
                    assert staged is not None
                    self.cache.swap_in(staged, self._clock())
                else:
                    if staged is not None:
                        self.cache.discard(staged)
                    log.info("snapshot seq=%d older than cache seq=%d; kept the cache", snapshot.seq, current)
                self._drain()
                still_gap = bool(self._buffer)
                self._applied_cond.notify_all()
        if still_gap:
            self.request_snapshot()
        return loaded

    def _drain(self) -> None:
        """Drop buffered changes the cache already has; apply those that now follow on, oldest first."""
        for stale in [s for s in self._buffer if s <= self.cache.seq]:
            del self._buffer[stale]
        while self._buffer:
            change = self._buffer[min(self._buffer)]
            if self.cache.apply_change(change, self._clock(), self.site_id) is not ChangeResult.APPLIED:
                break
            del self._buffer[change.seq]
            self.applied += 1
            log.info("buffered change applied seq=%d kind=%s", change.seq, change.body.kind)

    @property
    def buffered(self) -> int:
        """How many changes wait for a missing predecessor."""
        with self._lock:
            return len(self._buffer)

    def wait_for_seq(self, seq: int, timeout: float) -> bool:
        """Block until the cache reaches ``seq`` (tests and tools); True if it did within ``timeout``."""
        with self._applied_cond:
            return self._applied_cond.wait_for(lambda: self.cache.seq >= seq, timeout)


class SnapshotRefresher:
    """A background thread that fetches a snapshot whenever one is requested, retrying with backoff.

    ``refresh``: does one attempt and returns whether it succeeded (e.g. :meth:`gate.app.Gate.refresh_snapshot`).
    After a failure it waits ``initial_backoff_s``, doubling up to ``max_backoff_s``, and tries again until
    one succeeds. Requests made while an attempt runs lead to one more attempt afterwards. Successful fetches
    are at least ``min_interval_s`` apart, so a gap that a snapshot cannot close does not hammer central.
    ``pause(seconds)`` waits between attempts and returns True when the refresher was stopped meanwhile; it
    defaults to waiting on the stop event (tests pass one that records the delays instead of sleeping).
    """

    def __init__(self, refresh: Callable[[], bool], initial_backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, min_interval_s: float = 1.0,
                 pause: Callable[[float], bool] | None = None) -> None:
        self._refresh = refresh
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.min_interval_s = min_interval_s
        self._wanted = threading.Event()
        self._pending = False
        self._stop = threading.Event()
        self._pause = pause or self._stop.wait
        self._thread: threading.Thread | None = None
        self.attempts = 0
        self.successes = 0

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="snapshot-refresh", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a snapshot soon; never blocks."""
        self._pending = True
        self._wanted.set()

    @property
    def pending(self) -> bool:
        """True from a request until a snapshot has been loaded (or found older than the cache)."""
        return self._pending

    def stop(self) -> None:
        """Stop the thread (an attempt in progress finishes first, bounded by its HTTP timeout)."""
        self._stop.set()
        self._wanted.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=15)

    def _run(self) -> None:
        backoff = self.initial_backoff_s
        while not self._stop.is_set():
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            self.attempts += 1
            try:
                ok = self._refresh()
            except Exception:
                if self._stop.is_set():  # the gate is shutting down and closed its store under this attempt
                    log.debug("snapshot refresh ended by the gate's stop", exc_info=True)
                    return
                log.exception("snapshot refresh failed")
                ok = False
            if ok:
                self.successes += 1
                if not self._wanted.is_set():
                    self._pending = False
                backoff = self.initial_backoff_s
                if self._pause(self.min_interval_s):
                    return
                continue
            self._wanted.set()  # still wanted: try again after the backoff
            log.info("snapshot retry in %.1fs", backoff)
            if self._pause(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff_s)


def refresh_from_central(central: CentralSection, gate_id: str, fetch: Callable[..., Any],
                         follower: ChangeFollower) -> bool:
    """Fetch a snapshot from central with ``fetch(url, gate_id, token, timeout)`` and load it through
    ``follower``; on failure keep the existing cache and log why. Returns success.

    A snapshot older than the cache (changes arrived meanwhile) is not loaded, but counts as success.
    """
    try:
        token = central.resolve_token()
    except OSError as exc:
        log.warning("snapshot not loaded: token unreadable: %s; deciding from cached seq=%d",
                    exc, follower.cache.seq)
        return False
    snapshot: Any = None
    try:
        snapshot = fetch(central.url, gate_id, token, central.timeout)
        # A streamed snapshot is validated entry by entry while it loads: a bad one raises SyncError
        # half-way and the cache keeps its previous content.
        follower.load_snapshot(snapshot)
    except SyncError as exc:
        log.warning("snapshot not loaded reason=%s detail=%s; deciding from cached seq=%d",
                    exc.reason.value, exc.detail, follower.cache.seq)
        return False
    finally:
        close = getattr(snapshot, "close", None)  # a stream holds a connection; a plain Snapshot does not
        if callable(close):
            close()
    return True
