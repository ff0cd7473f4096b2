"""Commands from central to this gate: open once, lock down, release, resume, resync.

Every message of the gate's command topic goes through :meth:`CommandHandler.submit` to one worker thread
(never paho's network thread), which handles commands one at a time:

1. Validation. A payload that is not a valid :class:`~protocols.payloads.Command` is logged and dropped, unless
   it carries a readable command ``id`` and this gate's ``gate_id``: then it is answered ``ok=false`` with the
   reason (``malformed``, ``unsupported_version``). A command for another gate is answered ``wrong_gate``.
2. Idempotency. Command ids and their answers are kept in the gate's SQLite cache file (table
   ``command_log``), so a re-delivered command (QoS 1 redelivery, a restart) is answered with the stored
   result and never executed twice. A command whose execution a crash interrupted is answered
   ``internal_error`` on redelivery, not executed again.
3. Freshness. A command issued more than ``max_age_s`` ago, or more than that far in the future, is refused
   with ``stale_command``: an ``open`` queued for an hour while the gate was offline must never open the
   turnstile. The age is taken on central's clock as the gate estimates it (:mod:`gate.clock`; before the gate
   has an estimate, the offset central measured from its heartbeats and put in the command), so a gate whose
   clock is minutes off still obeys a fresh command and refuses an old one.
4. Execution and one :class:`~protocols.payloads.CommandResult` (QoS 1) on the command-results topic:

   ``open``
       One manual turnstile cycle, recorded as a manual check-in (reason ``manual_open``) with
       ``operator=issued_by``, ``command_id`` and the meeting/delegate when given; it goes through the outbox
       like every check-in. Refused ``locked_down`` during a lockdown.
   ``lockdown``
       Mode ``lockdown``: every scan is refused with ``locked_down``, the guard's manual button is ignored, and
       the relay returns to its locked (rest) level. The emergency input still overrides it (life safety):
       while it is active the turnstile is held open.
   ``release``
       Mode ``release``: the turnstile is held open exactly as the emergency input holds it (scans are still
       decided and recorded, an allowed one counts as entered), until ``resume`` or ``lockdown``.
   ``resume``
       Mode ``normal``.
   ``resync``
       Fetch a fresh snapshot from central in the background; answered when done (``sync_failed`` if not).

The mode is persisted (table ``command_state``) and restored at start-up, so a locked-down gate stays locked
down across a restart or a power cut.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from protocols.payloads import Command, CommandResult, GateMode, PayloadError, decode, encode
from protocols.reasons import Reason

from .clock import shift
from .store import CommandStore

if TYPE_CHECKING:
    from .app import Gate

log = logging.getLogger(__name__)

Mode = GateMode
MODE_OF_ACTION: dict[str, Mode] = {
    "lockdown": GateMode.LOCKDOWN, "release": GateMode.RELEASE, "resume": GateMode.NORMAL,
}
"""The mode each mode-setting command action puts the gate in (actions are not modes: ``resume`` -> normal)."""
DEFAULT_MAX_AGE_S = 30.0
MAX_QUEUED = 100
KEEP_LOG_DAYS = 30

class CommandHandler:
    """Validates, de-duplicates and executes commands for ``gate``, and publishes the answers.

    ``publish(payload) -> bool`` sends one encoded CommandResult (QoS 1). ``clock``: aware UTC now (the gate's
    clock). ``clock_offset()``: central's clock minus the gate's as the gate estimates it (None: no estimate).
    ``max_age_s``: the freshness window, both ways.
    """

    def __init__(self, gate: Gate, store: CommandStore, publish: Callable[[bytes], bool] | None,
                 max_age_s: float = DEFAULT_MAX_AGE_S,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 clock_offset: Callable[[], float | None] = lambda: None) -> None:
        self.gate = gate
        self.gate_id = gate.gate_id
        self.store = store
        self.publish = publish
        self.max_age_s = max_age_s
        self._clock = clock
        self._clock_offset = clock_offset
        self._mode: Mode = GateMode.NORMAL
        self._mode_lock = threading.RLock()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=MAX_QUEUED)
        self._worker: threading.Thread | None = None
        self._resync_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self.results: list[CommandResult] = []
        """Every answer sent (or meant to be sent), oldest first; for tests and the status page."""
        self._results_cond = threading.Condition()

    # ----- lifecycle

    @property
    def mode(self) -> Mode:
        """The gate's mode (normal, lockdown or release)."""
        return self._mode

    @property
    def locked_down(self) -> bool:
        """True while scans are refused with ``locked_down``."""
        return self._mode == GateMode.LOCKDOWN

    def start(self) -> None:
        """Restore the persisted mode (the cycle must be started) and start the worker thread."""
        stored = self.store.get_state("mode")
        mode = GateMode(stored) if stored in set(GateMode) else GateMode.NORMAL
        self._install_emergency_hook()
        if mode != GateMode.NORMAL:
            log.warning("gate mode restored from the cache mode=%s", mode)
        self._set_mode(mode, persist=False)
        try:
            pruned = self.store.prune(self._clock() - timedelta(days=KEEP_LOG_DAYS))
            if pruned:
                log.info("old command ids forgotten count=%d", pruned)
        except sqlite3.Error:
            log.exception("pruning the command log failed")
        self._worker = threading.Thread(target=self._work, name=f"gate-commands-{self.gate_id}", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the worker (commands still queued are dropped; central will time out on them)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with self._queue.mutex:
            self._queue.queue.clear()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout)
        for thread in self._threads:
            thread.join(timeout)
        self.store.close()

    def submit(self, raw: bytes) -> None:
        """Queue one message of the command topic (called on paho's network thread; returns at once)."""
        if self._stopped.is_set():
            return
        try:
            self._queue.put_nowait(bytes(raw))
        except queue.Full:
            log.error("command dropped: %d commands already waiting", MAX_QUEUED)

    def _work(self) -> None:
        while True:
            raw = self._queue.get()
            if raw is None:
                return
            try:
                self.handle(raw)
            except Exception:
                log.exception("command handling failed")

    # ----- scans and inputs

    def emergency_input_active(self) -> bool:
        """True while the physical emergency input is active."""
        device = self.gate.cycle.emergency_input
        try:
            return bool(device is not None and device.is_active)
        except Exception:
            return bool(self.gate.cycle.emergency and self._mode != GateMode.RELEASE)

    def _install_emergency_hook(self) -> None:
        """Releasing the emergency input must not end a commanded release (the cycle's own hook would)."""
        device = self.gate.cycle.emergency_input
        if device is None:
            return

        def released() -> None:
            if self._mode == GateMode.RELEASE:
                log.warning("emergency input released; turnstile stays held open (mode release)")
                return
            self.gate.cycle.set_emergency(False)

        device.when_deactivated = released

    # ----- handling

    def handle(self, raw: bytes) -> CommandResult | None:
        """Validate and execute one command message; return the answer sent (None when dropped).

        A ``resync`` returns None here; its answer is sent when the fetch is over.
        """
        try:
            command = decode(Command, raw)
        except PayloadError as exc:
            return self._refuse_undecodable(raw, exc)
        now = self._clock()
        if command.gate_id != self.gate_id:
            log.warning("command for another gate refused command_id=%s gate_id=%s", command.id, command.gate_id)
            return self._answer(command.id, False, Reason.WRONG_GATE, store=False)
        first, stored = self.store.claim(command, now)
        if not first:
            if stored is not None:
                try:
                    previous = decode(CommandResult, stored)
                except PayloadError:
                    previous = None
                if previous is not None:
                    log.info("repeated command answered from the log command_id=%s ok=%s", command.id,
                             previous.ok)
                    self._send(previous)
                    return previous
            log.warning("repeated command whose execution was interrupted command_id=%s; not executed again",
                        command.id)
            return self._answer(command.id, False, Reason.INTERNAL_ERROR, store=False)
        age, offset = self.command_age(command, now)
        if age > self.max_age_s or -age > self.max_age_s:
            log.warning("stale command refused command_id=%s action=%s age_s=%.1f max_age_s=%.1f "
                        "clock_offset_s=%s", command.id, command.action, age, self.max_age_s, offset)
            return self._answer(command.id, False, Reason.STALE_COMMAND)
        log.info("command received command_id=%s action=%s issued_by=%s age_s=%.2f", command.id, command.action,
                 command.issued_by, age)
        if command.action == "open":
            return self._open(command)
        if command.action in ("lockdown", "release", "resume"):
            self._set_mode(MODE_OF_ACTION[command.action])
            return self._answer(command.id, True, None)
        if command.action == "resync":
            self._start_resync(command)
            return None
        return self._answer(command.id, False, Reason.UNKNOWN_ACTION)  # pragma: no cover - the model forbids it

    def command_age(self, command: Command, now: datetime) -> tuple[float, float | None]:
        """The command's age in seconds on central's clock at gate time ``now``, and the offset used: the gate's
        own estimate, else the one central measured and sent in the command, else none (the gate's clock)."""
        offset = self._clock_offset()
        if offset is None:
            offset = command.gate_clock_offset_s
        return (shift(now, offset) - command.issued_at).total_seconds(), offset

    def _refuse_undecodable(self, raw: bytes, exc: PayloadError) -> CommandResult | None:
        try:
            data = json.loads(raw)
            command_id = UUID(str(data["id"])) if isinstance(data, dict) else None
            gate_id = data.get("gate_id") if isinstance(data, dict) else None
        except (ValueError, KeyError, TypeError):
            command_id, gate_id = None, None
        if command_id is None or gate_id != self.gate_id:
            log.warning("bad command dropped reason=%s detail=%s", exc.reason.value, exc.detail)
            return None
        log.warning("bad command refused command_id=%s reason=%s detail=%s", command_id, exc.reason.value,
                    exc.detail)
        return self._answer(command_id, False, exc.reason, store=False)

    def _open(self, command: Command) -> CommandResult:
        if self._mode == GateMode.LOCKDOWN:
            log.warning("remote open refused during lockdown command_id=%s", command.id)
            return self._answer(command.id, False, Reason.LOCKED_DOWN)
        checkin = self.gate.admission.remote_open(operator=command.issued_by, command_id=command.id,
                                                  meeting_id=command.meeting_id, delegate_id=command.delegate_id)
        if checkin is None:
            return self._answer(command.id, False, Reason.INTERNAL_ERROR)
        note: Reason | None = None
        if self.gate.cycle.emergency:
            note = Reason.RELEASED if self._mode == GateMode.RELEASE else Reason.EMERGENCY_ACTIVE
        return self._answer(command.id, True, note, checkin_id=checkin.id)

    def _start_resync(self, command: Command) -> None:
        def run() -> None:
            with self._resync_lock:
                try:
                    ok = bool(self.gate.refresh_snapshot())
                except Exception:
                    log.exception("resync failed command_id=%s", command.id)
                    ok = False
            log.info("resync done command_id=%s ok=%s", command.id, ok)
            self._answer(command.id, ok, None if ok else Reason.SYNC_FAILED)

        thread = threading.Thread(target=run, name=f"gate-resync-{self.gate_id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    # ----- mode

    def _set_mode(self, mode: Mode, persist: bool = True) -> None:
        with self._mode_lock:
            previous = self._mode
            if persist:
                self.store.set_state("mode", mode)  # on disk before the relay changes
            self._mode = mode
            cycle = self.gate.cycle
            if mode == GateMode.RELEASE:
                cycle.set_emergency(True)  # held open, slow green flashing, scans still recorded
            else:
                if previous == GateMode.RELEASE and not self.emergency_input_active():
                    cycle.set_emergency(False)
                if mode == GateMode.LOCKDOWN and not cycle.emergency:
                    self.gate.turnstile.lock()  # cancel a running unlock: relay at its locked level
        if mode != previous:
            log.warning("gate mode changed from=%s to=%s", previous, mode)
        transport = self.gate.transport
        if transport is not None and mode != previous:
            try:
                transport.publish_status()
            except Exception:
                log.exception("status not republished after a mode change")

    # ----- answers

    def _answer(self, command_id: UUID, ok: bool, reason: Reason | None, *, store: bool = True,
                checkin_id: UUID | None = None) -> CommandResult:
        result = CommandResult(command_id=command_id, gate_id=self.gate_id, ok=ok,
                               reason=reason.value if reason is not None else None, mode=self._mode,
                               checkin_id=checkin_id)
        payload = encode(result)
        if store:
            try:
                self.store.finish(result, payload)
            except sqlite3.Error:
                log.exception("command answer not stored command_id=%s", command_id)
        self._send(result, payload)
        return result

    def _send(self, result: CommandResult, payload: bytes | None = None) -> None:
        with self._results_cond:
            self.results.append(result)
            self._results_cond.notify_all()
        if self.publish is None:
            return
        try:
            if not self.publish(payload or encode(result)):
                log.warning("command result not handed to the broker now command_id=%s", result.command_id)
        except Exception:
            log.exception("command result not published command_id=%s", result.command_id)

    def wait_result(self, command_id: UUID, timeout: float = 5.0) -> CommandResult | None:
        """Block until an answer to ``command_id`` was sent; return the latest one (tests)."""
        deadline = time.monotonic() + timeout

        def found() -> CommandResult | None:
            for result in reversed(self.results):
                if result.command_id == command_id:
                    return result
            return None

        with self._results_cond:
            while (result := found()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._results_cond.wait(remaining)
            return result
