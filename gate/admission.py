"""Admission: who gets through, recorded before the turnstile acts.

Check-in lifecycle: decide -> write the check-in to the outbox (committed, synchronous FULL) -> unlock + green,
or red. With a passage sensor the row is written with the provisional outcome ``unknown`` and held back from
delivery; the turnstile cycle (:mod:`gate.cycle`) then reports ``entered`` (the sensor turned) or
``not_passed`` (unlock time over), the row is updated and only then published (QoS 1) until central
acknowledges it. A row still held back at start-up belongs to a cycle that a crash interrupted: it is released
with outcome ``unknown`` (:meth:`Admission.finalise_interrupted`). Without a sensor an allowed decision is
recorded as ``entered`` at once.

Only an ``entered`` passage consumes its credential (for anti-passback); it is also published on the site's
check-in topic (the site fan-out), and check-ins of the other gates of the site arriving there update the same
table, so ``decide()`` refuses a code already used at a sibling gate even while central is down.

Emergency: while the emergency input holds the turnstile open, scans are still decided and recorded; an allowed
one counts as ``entered`` without relay action (free passage), a refused one shows red. The guard's manual
button and central's remote open are recorded as manual check-ins (reason ``manual_open``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from protocols.payloads import (
    CheckIn,
    Direction,
    GateMode,
    Outcome,
    PayloadError,
    decode,
    encode,
    encode_site_checkin,
)
from protocols.reasons import Reason

from .clock import shift
from .cycle import TurnstileCycle
from .debounce import ScanDebouncer
from .decision import Decision
from .delivery import DeliveryLoop
from .recent import RecentScans, ScanRecord
from .scanners import ScanEvent
from .store import GateStore
from .transport import Transport
from .turnstile import Indicator, Turnstile

log = logging.getLogger(__name__)

Decider = Callable[..., Decision]
"""``decide(scan, view, now, site_id, direction, mode)``: :func:`gate.decision.decide` or a test double."""

LOCK_WAIT_S = 2.0
"""How long a manual or remote open waits for a scan being handled before giving up."""


def safely(action: Callable[[], Any]) -> None:
    """Run an indicator action; a failing LED or buzzer is logged, never raised into the admission."""
    try:
        action()
    except Exception:
        log.exception("indicator failed")


class Admission:
    """Decides, records and acts on scans, manual and remote opens and the turnstile cycle's outcomes.

    It listens to ``cycle`` (outcomes, forced passages, the manual button). ``mode()`` is the gate's mode, an
    input of ``decider``. The store, the transport and the delivery loop are attached at start
    (:meth:`attach`); before that every scan is refused as an internal error. ``clock`` is the gate's own clock
    (check-ins carry it); ``clock_offset()`` is the estimated central-minus-gate offset in seconds (None: none
    yet, see :mod:`gate.clock`): ``decider`` gets the corrected time, and each check-in carries the offset.
    """

    def __init__(self, *, gate_id: str, site_id: str, direction: Direction, cycle: TurnstileCycle,
                 turnstile: Turnstile, indicator: Indicator, decider: Decider, mode: Callable[[], GateMode],
                 clock: Callable[[], datetime], debounce_s: float,
                 clock_offset: Callable[[], float | None] = lambda: None) -> None:
        self.gate_id = gate_id
        self.site_id = site_id
        self.direction = direction
        self.cycle = cycle
        self.turnstile = turnstile
        self.indicator = indicator
        self.decider = decider
        self.mode = mode
        self.clock = clock
        self.clock_offset = clock_offset
        self.debouncer = ScanDebouncer(debounce_s)
        self.recent = RecentScans()
        self.store: GateStore | None = None
        self.transport: Transport | None = None
        self.delivery: DeliveryLoop | None = None
        self.scans_handled = 0
        self.busy_since: float | None = None
        """Monotonic time the scan being handled started (None when idle), for the watchdog."""
        self._handled = threading.Condition()
        self._scan_lock = threading.Lock()
        self._awaiting: dict[str, CheckIn] = {}
        self._awaiting_lock = threading.Lock()
        cycle.on_outcome = self.on_outcome
        cycle.on_forced = self.on_forced
        cycle.on_manual = self.manual_open

    def attach(self, store: GateStore, transport: Transport, delivery: DeliveryLoop | None) -> None:
        """Give the admission its store, transport and delivery loop (at start)."""
        self.store, self.transport, self.delivery = store, transport, delivery

    # ----- scans

    def on_scan(self, event: ScanEvent) -> None:
        """The scanners' callback: drop repeats of the same scan within the debounce window, handle the rest."""
        if not self.debouncer.accept(event, event.received_at):
            log.debug("repeated scan ignored source=%s ignored_total=%d", event.source, self.debouncer.ignored)
            return
        self.handle_scan(event)

    def handle_scan(self, event: ScanEvent, now: datetime | None = None) -> tuple[Decision, CheckIn | None]:
        """Decide on one scan, record it durably, then act on the turnstile and LEDs. Never raises.

        Returns the decision and the recorded check-in as first written (None when it could not be recorded;
        then the turnstile stays locked and the LEDs show an error). Returns at once: with a passage sensor,
        the outcome is recorded later by the turnstile cycle.
        """
        with self._scan_lock:
            self.busy_since = time.monotonic()
            try:
                return self._handle_scan(event, now or self.clock())
            except Exception:
                log.exception("scan handling failed")
                safely(self.indicator.error)
                return Decision(False, Reason.INTERNAL_ERROR), None
            finally:
                self.busy_since = None
                with self._handled:
                    self.scans_handled += 1
                    self._handled.notify_all()

    def _handle_scan(self, event: ScanEvent, now: datetime) -> tuple[Decision, CheckIn | None]:
        if self.store is None:
            raise RuntimeError("gate not started")
        offset = self.clock_offset()
        if event.reason is not Reason.OK or event.text is None:
            decision = Decision(False, event.reason if event.reason is not Reason.OK else Reason.MALFORMED)
        else:
            # Validity windows are central's times: judge them by central's clock as this gate estimates it.
            decision = self.decider(event.text, self.store, shift(now, offset), self.site_id, self.direction,
                                    self.mode())
        checkin = self.admit(decision, now, manual=False, clock_offset_s=offset)
        if checkin is not None:
            log.info("scan decided checkin_id=%s allowed=%s reason=%s meeting_id=%s delegate_id=%s source=%s",
                     checkin.id, decision.allowed, decision.reason.value, decision.meeting_id,
                     decision.delegate_id, event.source)
            return decision, checkin
        return Decision(False, Reason.INTERNAL_ERROR), None

    def wait_for_scans(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` scans have been handled in total; True if reached within ``timeout``."""
        with self._handled:
            return self._handled.wait_for(lambda: self.scans_handled >= count, timeout)

    # ----- manual and remote opens

    def manual_open(self) -> CheckIn | None:
        """The guard's manual-open button: open once, recorded as a manual check-in (reason manual_open).

        Ignored while the emergency input holds the turnstile open. Returns the check-in, or None.
        """
        if self.cycle.emergency:
            log.info("manual open ignored: emergency input active, turnstile already open")
            return None
        if self.mode() == GateMode.LOCKDOWN:
            log.warning("manual open ignored: gate locked down by central")
            safely(self.indicator.refused)
            return None
        if self.store is None:
            log.warning("manual open ignored: gate not started")
            return None
        # Called on gpiozero's input thread, which also carries the passage sensor: never wait long here.
        if not self._scan_lock.acquire(timeout=LOCK_WAIT_S):
            log.error("manual open not done: scan handling is stalled")
            safely(self.indicator.error)
            return None
        try:
            checkin = self.admit(Decision(True, Reason.MANUAL_OPEN), self.clock(), manual=True)
        finally:
            self._scan_lock.release()
        if checkin is not None:
            log.info("manual open checkin_id=%s", checkin.id)
        return checkin

    def remote_open(self, *, operator: str, command_id: uuid.UUID, meeting_id: int | None = None,
                    delegate_id: int | None = None) -> CheckIn | None:
        """Central's "open" command: one manual cycle, recorded as a manual check-in naming ``operator`` and
        the command (and the admitted person when given). Returns the check-in, or None when not recorded."""
        if self.store is None:
            log.warning("remote open not done: gate not started")
            return None
        entry = None
        if meeting_id is not None and delegate_id is not None:
            try:
                entry = self.store.delegate(meeting_id, delegate_id)
            except Exception:
                log.exception("delegate lookup failed for a remote open")
        decision = Decision(True, Reason.MANUAL_OPEN, meeting_id=meeting_id, delegate_id=delegate_id,
                            name=entry.name if entry else None, organisation=entry.organisation if entry else None,
                            position=entry.position if entry else None)
        if not self._scan_lock.acquire(timeout=LOCK_WAIT_S):
            log.error("remote open not done: scan handling is stalled")
            return None
        try:
            checkin = self.admit(decision, self.clock(), manual=True,
                                 extra={"operator": operator, "command_id": command_id})
        finally:
            self._scan_lock.release()
        if checkin is not None:
            log.info("remote open checkin_id=%s command_id=%s operator=%s", checkin.id, command_id, operator)
        return checkin

    # ----- the outcome

    def admit(self, decision: Decision, now: datetime, manual: bool,
              extra: dict[str, Any] | None = None, clock_offset_s: float | None = None) -> CheckIn | None:
        """Record ``decision`` (committed before any relay action), then act; None if it was not recorded.

        ``now``: the gate's clock. ``extra``: further CheckIn fields (``operator``, ``command_id`` of a remote
        open). ``clock_offset_s``: the clock offset the decision used (default: the current estimate)."""
        assert self.store is not None
        if clock_offset_s is None:
            clock_offset_s = self.clock_offset()
        via_cycle = decision.allowed and self.cycle.has_sensor and not self.cycle.emergency
        if not decision.allowed:
            outcome, completed = Outcome.REFUSED, None
        elif via_cycle:
            outcome, completed = Outcome.UNKNOWN, None  # provisional until the cycle reports
        else:
            outcome, completed = Outcome.ENTERED, now
        checkin = CheckIn(
            id=uuid.uuid4(), gate_id=self.gate_id, site_id=self.site_id, direction=self.direction,
            scanned_at=now, allowed=decision.allowed, reason=decision.reason, outcome=outcome,
            meeting_id=decision.meeting_id, delegate_id=decision.delegate_id, scheme=decision.scheme,
            credential=decision.credential, manual=manual, completed_at=completed, clock_offset_s=clock_offset_s,
            **(extra or {}),
        )
        if via_cycle:
            with self._awaiting_lock:
                self._awaiting[str(checkin.id)] = checkin
        try:
            self.store.add_checkin(checkin, encode(checkin), now, awaiting_outcome=via_cycle,
                                   consumed=outcome is Outcome.ENTERED)
        except Exception:
            # Cannot record: do not open (an unrecorded passage is worse than a refused one).
            log.exception("check-in not recorded; turnstile stays locked checkin_id=%s", checkin.id)
            with self._awaiting_lock:
                self._awaiting.pop(str(checkin.id), None)
            safely(self.indicator.error)
            return None
        # The relay first: LEDs, the guard's page and the fan-out are not on the scan-to-unlock path.
        if decision.allowed:
            # Written (and flushed by the handler) after the commit and before the pin write: a crash between
            # the two leaves a logged, recorded check-in whose relay stayed shut, never an opened relay without
            # this line. Fault tests take it as the ground truth of "relay opened".
            log.info("relay opening checkin_id=%s", checkin.id)
            if via_cycle:
                self.cycle.authorise(str(checkin.id))
            elif not self.cycle.emergency:
                self.turnstile.unlock()
            self.indicator.allowed()
        else:
            self.indicator.refused()
        self.recent.remember(ScanRecord(
            at=now, checkin_id=str(checkin.id), allowed=decision.allowed, reason=decision.reason,
            meeting_id=decision.meeting_id, delegate_id=decision.delegate_id, name=decision.name,
            organisation=decision.organisation, position=decision.position, manual=manual,
            outcome=None if via_cycle else outcome.value,
        ))
        if outcome is Outcome.ENTERED:
            self.fan_out(checkin)
        self._kick_delivery()
        return checkin

    def on_outcome(self, checkin_id: str, outcome: Outcome) -> None:
        """The turnstile cycle's report on an authorised passage: record it and release it for delivery."""
        with self._awaiting_lock:
            checkin = self._awaiting.pop(checkin_id, None)
        if checkin is None or self.store is None:
            log.warning("outcome for an unknown passage checkin_id=%s outcome=%s", checkin_id, outcome.value)
            return
        now = self.clock()
        completed = None if outcome is Outcome.UNKNOWN else max(now, checkin.scanned_at)
        final = checkin.model_copy(update={"outcome": outcome, "completed_at": completed})
        try:
            self.store.complete_checkin(final, encode(final), now, consumed=outcome is Outcome.ENTERED)
        except Exception:
            log.exception("outcome not recorded checkin_id=%s outcome=%s", checkin_id, outcome.value)
            safely(self.indicator.error)
            return
        self.recent.set_outcome(checkin_id, outcome.value)
        log.info("passage recorded checkin_id=%s outcome=%s", checkin_id, outcome.value)
        if outcome is Outcome.ENTERED:
            self.fan_out(final)
        self._kick_delivery()

    def on_forced(self) -> None:
        """A turn without authorisation: recorded as a refused passage that entered (``door_forced``)."""
        if self.store is None:
            return
        now = self.clock()
        checkin = CheckIn(
            id=uuid.uuid4(), gate_id=self.gate_id, site_id=self.site_id, direction=self.direction,
            scanned_at=now, allowed=False, reason=Reason.DOOR_FORCED, outcome=Outcome.ENTERED, meeting_id=None,
            delegate_id=None, scheme=None, credential=None, completed_at=now, clock_offset_s=self.clock_offset(),
        )
        try:
            self.store.add_checkin(checkin, encode(checkin), now)
        except Exception:
            log.exception("forced passage not recorded")
            return
        self.recent.remember(ScanRecord(at=now, checkin_id=str(checkin.id), allowed=False,
                                        reason=Reason.DOOR_FORCED, meeting_id=None, delegate_id=None, name=None,
                                        organisation=None, outcome=Outcome.ENTERED.value))
        log.warning("door forced recorded checkin_id=%s", checkin.id)
        self._kick_delivery()

    def finalise_interrupted(self) -> None:
        """Release rows whose cycle never ended (the gate died mid-cycle) with outcome ``unknown``."""
        assert self.store is not None
        for row in self.store.awaiting_rows():
            try:
                checkin = decode(CheckIn, row.payload)
            except PayloadError as exc:
                log.error("outbox row unreadable checkin_id=%s reason=%s", row.checkin_id, exc.reason.value)
                continue
            final = checkin.model_copy(update={"outcome": Outcome.UNKNOWN, "completed_at": None})
            self.store.complete_checkin(final, encode(final), self.clock(), consumed=False)
            log.warning("interrupted passage finalised checkin_id=%s outcome=unknown", row.checkin_id)

    def _kick_delivery(self) -> None:
        if self.delivery is not None:
            self.delivery.kick()

    # ----- the site fan-out

    def fan_out(self, checkin: CheckIn) -> None:
        """Tell the other gates of the site that a credential was used (entered in or out)."""
        if not checkin.credential or not checkin.allowed or self.transport is None:
            return
        try:
            if not self.transport.publish_site_checkin(encode_site_checkin(checkin)):
                log.warning("site check-in not handed to the broker now checkin_id=%s", checkin.id)
        except Exception:
            log.exception("site check-in not published checkin_id=%s", checkin.id)

    def on_site_checkin(self, checkin: CheckIn) -> None:
        """A check-in from another gate of the site: record its passage for anti-passback."""
        if self.store is None:
            return
        if not (checkin.allowed and checkin.outcome is Outcome.ENTERED and checkin.credential):
            return
        changed = self.store.record_passage(checkin.credential, str(checkin.id),
                                            checkin.completed_at or checkin.scanned_at, checkin.direction,
                                            checkin.gate_id)
        log.info("site passage recorded checkin_id=%s from_gate=%s direction=%s changed=%s", checkin.id,
                 checkin.gate_id, checkin.direction.value, changed)

    def is_consumed(self, credential: str) -> bool:
        """True when a passage with ``credential`` was recorded as entered at this gate."""
        return self.store is not None and self.store.is_consumed(credential)
