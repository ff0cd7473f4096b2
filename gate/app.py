"""The gate controller: wires config, cache, decision, turnstile cycle, scanner, transport and delivery together.

``Gate`` is usable in-process (tests start several, each with its own MockFactory); ``run()`` blocks, handles
SIGTERM/SIGINT when called from the main thread, and talks to systemd (READY, WATCHDOG, STOPPING, STATUS).

Check-in lifecycle: decide -> write the check-in to the outbox (committed, synchronous FULL) -> unlock + green,
or red. With a passage sensor the row is written with the provisional outcome ``unknown`` and held back from
delivery; the turnstile cycle (:mod:`gate.cycle`) then reports ``entered`` (the sensor turned) or
``not_passed`` (unlock time over), the row is updated and only then published (QoS 1) until central
acknowledges it. A row still held back at start-up belongs to a cycle that a crash interrupted: it is released
with outcome ``unknown``. Without a sensor an allowed decision is recorded as ``entered`` at once.

Only an ``entered`` passage consumes its credential (:meth:`Gate.is_consumed`, for anti-passback); it is also
published on the site's check-in topic, and check-ins of the other gates of the site arriving there update the
same table, so ``decide()`` refuses a code already used at a sibling gate even while central is down.

Sync: the snapshot is loaded at start (when central answers); then :class:`gate.follow.ChangeFollower` applies
central's change stream, and :class:`gate.follow.SnapshotRefresher` fetches a new snapshot in the background
after a gap or a failed start-up fetch, with backoff. A heartbeat goes out every ``[mqtt] heartbeat_seconds``.
Emergency: while ``pins.emergency`` is active the turnstile is held open; scans are still decided and
recorded, an allowed one counts as ``entered`` without relay action (free passage), a refused one shows red.
Commands: central's open / lockdown / release / resume / resync arrive on the gate's command topic and are
handled by :mod:`gate.commands` (validated, de-duplicated, refused when stale, answered); a lockdown wraps the
decision function so every scan is refused, a release holds the turnstile open like the emergency input.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from gpiozero import Button, DigitalInputDevice

from protocols.payloads import CheckIn, Direction, Heartbeat, Outcome, PayloadError, decode, encode
from protocols.reasons import Reason

from . import __version__
from . import systemd as sd
from .commands import CommandHandler, CommandStore
from .config import GateConfig
from .cycle import TurnstileCycle
from .debounce import ScanDebouncer
from .decision import Decision, decide
from .delivery import DeliveryLoop
from .follow import ChangeFollower, SnapshotRefresher
from .heartbeat import HeartbeatLoop
from .scanners import ScanEvent, Scanner, build_scanner
from .store import GateStore
from .sync import SyncError, fetch_snapshot
from .transport import MqttTransport, Transport
from .turnstile import Indicator, PinClaimError, Turnstile, claim

log = logging.getLogger(__name__)

RECENT_SCANS = 50
DEFAULT_STALL_S = 5.0


@dataclasses.dataclass(frozen=True)
class ScanRecord:
    """One handled scan (or manual open / forced passage), kept in memory for the status page."""

    at: datetime
    checkin_id: str
    allowed: bool
    reason: Reason
    meeting_id: int | None
    delegate_id: int | None
    name: str | None
    organisation: str | None
    position: str | None = None
    manual: bool = False
    outcome: str | None = None


def default_pin_factory(simulate: bool) -> Any:
    """The pin factory when none is given: gpiozero's MockFactory when simulating, else gpiozero's default."""
    if simulate:
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    return None


class Gate:
    """One gate unit.

    ``pin_factory``: a gpiozero pin factory (default: :func:`default_pin_factory`). ``scanner`` /
    ``transport``: injected implementations (default: built from the config). ``clock``: the aware UTC "now"
    used when ``handle_scan`` is not given one. ``decider``: the decision function (default
    :func:`gate.decision.decide`). ``stall_after_s``: a scan handler busy longer than this is stalled, and
    the systemd watchdog is no longer fed. ``resync_backoff_s`` / ``resync_max_backoff_s``: retry delays of
    the background snapshot fetch; ``resync_min_interval_s``: least time between two fetches. A pin that
    cannot be claimed raises :class:`PinClaimError` naming the config key.
    """

    def __init__(
        self,
        config: GateConfig,
        pin_factory: Any = None,
        scanner: Scanner | None = None,
        transport: Transport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fetch: Callable[..., Any] = fetch_snapshot,
        flush_timeout: float = 2.0,
        delivery_poll_s: float = 0.5,
        decider: Callable[..., Decision] = decide,
        stall_after_s: float = DEFAULT_STALL_S,
        resync_backoff_s: float = 1.0,
        resync_max_backoff_s: float = 60.0,
        resync_min_interval_s: float = 1.0,
    ) -> None:
        self.config = config
        self.gate_id = config.gate.id
        self.site_id = config.gate.site
        self._clock = clock
        self._fetch = fetch
        self._decide = decider
        self.flush_timeout = flush_timeout
        self.delivery_poll_s = delivery_poll_s
        self.stall_after_s = stall_after_s
        self.follower: ChangeFollower | None = None
        self.refresher = SnapshotRefresher(self.refresh_snapshot, initial_backoff_s=resync_backoff_s,
                                           max_backoff_s=resync_max_backoff_s,
                                           min_interval_s=resync_min_interval_s)
        self.heartbeat: HeartbeatLoop | None = None
        self.commands: CommandHandler | None = None
        if pin_factory is None:
            pin_factory = default_pin_factory(config.gate.simulate)
        self.pin_factory = pin_factory
        self._inputs: list[Any] = []
        self._build_pins(config, pin_factory)
        self.scanner = scanner
        self.transport = transport
        self.cache: GateStore | None = None
        self.delivery: DeliveryLoop | None = None
        self.status_server: Any = None
        self.recent: deque[ScanRecord] = deque(maxlen=RECENT_SCANS)
        self._recent_lock = threading.Lock()
        self._awaiting: dict[str, CheckIn] = {}
        self._awaiting_lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._handled = threading.Condition()
        self.scans_handled = 0
        self.debouncer = ScanDebouncer(config.scanner.debounce_ms / 1000)
        self._busy_since: float | None = None
        self._scanner_status: tuple[str, float] | None = None
        self._started = False
        self._stopped = threading.Event()

    def _build_pins(self, config: GateConfig, factory: Any) -> None:
        """Claim every pin, the relay first (it goes to its locked rest level at once); on failure release
        those already claimed and raise PinClaimError."""
        pins = config.pins
        built: list[Any] = []
        try:
            self.turnstile = Turnstile(pins.relay, config.gate.fail_mode, config.turnstile.unlock_seconds,
                                       pin_factory=factory, relay_active_high=pins.relay_active_high)
            built.append(self.turnstile)
            self.indicator = Indicator(pins.green_led, pins.red_led, pin_factory=factory,
                                       buzzer_pin=pins.buzzer)
            built.append(self.indicator)

            def make_input(key: str, pin: int | None, cls: type) -> Any:
                if pin is None:
                    return None
                device = claim(f"pins.{key}", pin, lambda: cls(pin, pull_up=True, pin_factory=factory))
                built.append(device)
                self._inputs.append(device)
                return device

            sensor = make_input("passage_sensor", pins.passage_sensor, DigitalInputDevice)
            manual = make_input("manual_button", pins.manual_button, Button)
            emergency = make_input("emergency", pins.emergency, Button)
        except PinClaimError:
            for device in reversed(built):
                try:
                    device.close()
                except Exception:
                    log.debug("closing a pin after a failed start-up failed", exc_info=True)
            raise
        self.cycle = TurnstileCycle(
            self.turnstile, self.indicator, config.turnstile.unlock_seconds, sensor=sensor,
            manual_button=manual, emergency=emergency,
            sensor_debounce_s=config.turnstile.sensor_debounce_ms / 1000,
            on_outcome=self._on_outcome, on_forced=self._on_forced, on_manual=self.manual_open,
            on_emergency=self._on_emergency,
        )

    # ----- lifecycle

    def start(self) -> None:
        """Open the cache, finish interrupted cycles, refresh from central if reachable, connect, start
        delivery, the inputs, the status page and the scanner."""
        if self._started:
            raise RuntimeError("gate already started")
        self._started = True
        self.cache = GateStore(self.config.gate.data_dir)
        self.follower = ChangeFollower(self.cache, self.refresher.request, clock=self._clock)
        self._finalise_interrupted()
        if not self.refresh_snapshot():
            self.refresher.request()  # keep trying in the background; decide from the cache meanwhile
        self.refresher.start()
        if self.transport is None:
            mqtt_cfg = self.config.mqtt
            self.transport = MqttTransport(
                self.gate_id, mqtt_cfg.host, mqtt_cfg.port, username=mqtt_cfg.username,
                password=mqtt_cfg.resolve_password(), keepalive=mqtt_cfg.keepalive,
                software_version=__version__, site_id=self.site_id,
            )
        # Delivery times resends by the wall clock, not the (possibly frozen) decision clock.
        self.delivery = DeliveryLoop(self.cache, self.transport, resend_s=self.config.mqtt.resend_seconds,
                                     poll_s=self.delivery_poll_s)
        self.transport.on_ack = self.delivery.handle_ack
        self.transport.on_connected = self.delivery.kick
        self.transport.on_change = self.follower.handle_payload  # type: ignore[attr-defined]
        self.transport.on_site_checkin = self._on_site_checkin  # type: ignore[attr-defined]
        self.transport.on_session_lost = self.refresher.request  # type: ignore[attr-defined]
        self.commands = CommandHandler(self, CommandStore(self.cache.path),
                                       getattr(self.transport, "publish_command_result", None),
                                       max_age_s=self.config.commands.max_age_seconds, clock=self._clock)
        self._decide = self.commands.guard_decider(self._decide)
        self.transport.on_command = self.commands.submit  # type: ignore[attr-defined]
        self.transport.status_fields = self._status_fields  # type: ignore[attr-defined]
        self.transport.start()
        self.delivery.start()
        publish_heartbeat = getattr(self.transport, "publish_heartbeat", None)
        if publish_heartbeat is not None:
            self.heartbeat = HeartbeatLoop(self._heartbeat, publish_heartbeat,
                                           self.config.mqtt.heartbeat_seconds)
            self.heartbeat.start()
        self.cycle.start()
        self.commands.start()  # restores a persisted lockdown/release before the first scan
        self._start_status_server()
        if self.scanner is None:
            self.scanner = build_scanner(self.config.scanner)
        self.scanner.start(self.on_scan)
        log.info("gate started gate_id=%s site_id=%s fail_mode=%s passage_sensor=%s cache_seq=%d "
                 "outbox_pending=%d", self.gate_id, self.site_id, self.config.gate.fail_mode,
                 self.cycle.has_sensor, self.cache.seq, self.cache.outbox_pending())

    def _finalise_interrupted(self) -> None:
        """Release rows whose cycle never ended (the gate died mid-cycle) with outcome ``unknown``."""
        assert self.cache is not None
        for row in self.cache.awaiting_rows():
            try:
                checkin = decode(CheckIn, row.payload)
            except PayloadError as exc:
                log.error("outbox row unreadable checkin_id=%s reason=%s", row.checkin_id, exc.reason.value)
                continue
            final = checkin.model_copy(update={"outcome": Outcome.UNKNOWN, "completed_at": None})
            self.cache.complete_checkin(final, encode(final), self._clock(), consumed=False)
            log.warning("interrupted passage finalised checkin_id=%s outcome=unknown", row.checkin_id)

    def _start_status_server(self) -> None:
        status = self.config.status
        if not status.enabled:
            return
        try:
            from gate.status.server import StatusServer
        except ImportError:
            log.warning("status page not available in this build (gate.status.server missing)")
            return
        try:
            server = StatusServer(self, status.listen, status.port)
            server.start()
        except Exception as exc:  # a status page that cannot listen must not keep the turnstile down
            log.error("status page not started listen=%s port=%d: %s", status.listen, status.port, exc)
            return
        self.status_server = server

    def refresh_snapshot(self) -> bool:
        """Load a snapshot from central; on failure keep the existing cache and log why. Returns success.

        A snapshot older than the cache (changes arrived meanwhile) is not loaded, but counts as success.
        """
        assert self.cache is not None
        central = self.config.central
        try:
            token = central.resolve_token()
        except OSError as exc:
            log.warning("snapshot not loaded: token unreadable: %s; deciding from cached seq=%d",
                        exc, self.cache.seq)
            return False
        snapshot: Any = None
        try:
            snapshot = self._fetch(central.url, self.gate_id, token, central.timeout)
            # A streamed snapshot is validated entry by entry while it loads: a bad one raises SyncError
            # half-way and the cache keeps its previous content.
            if self.follower is not None:
                self.follower.load_snapshot(snapshot)
            else:
                self.cache.load_snapshot(snapshot, self._clock())
        except SyncError as exc:
            log.warning("snapshot not loaded reason=%s detail=%s; deciding from cached seq=%d",
                        exc.reason.value, exc.detail, self.cache.seq)
            return False
        finally:
            close = getattr(snapshot, "close", None)
            if callable(close):
                close()
        return True

    def _heartbeat(self) -> Heartbeat:
        """The heartbeat to publish now."""
        cache = self.cache
        return Heartbeat(gate_id=self.gate_id, sent_at=self._clock(), cache_seq=cache.seq if cache else 0,
                         outbox_pending=cache.outbox_pending() if cache else 0, software_version=__version__,
                         **self._status_fields())

    @property
    def mode(self) -> str:
        """The mode set by central's commands: "normal", "lockdown" or "release"."""
        return self.commands.mode if self.commands is not None else "normal"

    def _status_fields(self) -> dict[str, Any]:
        """emergency (the physical input), mode and fail_mode, for heartbeats and the retained status."""
        commands = self.commands
        emergency = commands.emergency_input_active() if commands is not None else self.cycle.emergency
        return {"emergency": emergency, "mode": self.mode, "fail_mode": self.config.gate.fail_mode}

    def stop(self) -> None:
        """Shut down in order: stop reading, end the cycle, relay de-energised, offline status, flush,
        disconnect, release the pins. Idempotent; safe to call from a signal handler's thread or a test."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        steps: list[tuple[str, Callable[[], Any]]] = []
        if self.scanner is not None:
            steps.append(("scanner", self.scanner.close))
        if self.commands is not None:
            steps.append(("commands", self.commands.stop))
        steps.append(("cycle", self.cycle.stop))
        if self.heartbeat is not None:
            steps.append(("heartbeat", self.heartbeat.stop))
        steps.append(("snapshot refresh", self.refresher.stop))
        steps.append(("relay", self.turnstile.release_for_shutdown))
        steps.append(("indicator", self.indicator.off))
        if self.status_server is not None:
            steps.append(("status page", self.status_server.stop))
        if self.transport is not None and self._started:
            steps.append(("offline status", self.transport.publish_offline))
        if self.delivery is not None:
            delivery = self.delivery
            steps.append(("flush", lambda: delivery.flush(self.flush_timeout)))
            steps.append(("delivery", delivery.stop))
        if self.transport is not None and self._started:
            steps.append(("disconnect", self.transport.stop))
        if self.cache is not None:
            steps.append(("cache", self.cache.close))
        steps.append(("pins", self.turnstile.close))
        steps.append(("leds", self.indicator.close))
        steps.extend(("inputs", device.close) for device in self._inputs)
        for name, step in steps:
            try:
                step()
            except Exception:
                log.exception("shutdown step failed step=%s", name)
        log.info("gate stopped gate_id=%s", self.gate_id)

    def run(self, stop_requested: threading.Event | None = None) -> None:
        """Start, serve until SIGTERM/SIGINT (or ``stop_requested`` is set), then stop.

        From the main thread it installs signal handlers. It notifies systemd: READY=1 once started,
        WATCHDOG=1 every half ``$WATCHDOG_USEC`` while :meth:`is_healthy`, STATUS= lines, STOPPING=1.
        """
        stop_event = stop_requested or threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal received signal=%s", signal.Signals(signum).name)
            stop_event.set()

        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        interval = sd.watchdog_interval()
        tick = min(1.0, interval) if interval else 1.0
        try:
            self.start()
            sd.notify("READY=1")
            sd.notify(f"STATUS={self.status_line()}")
            last_ping = 0.0
            fed = True
            while not stop_event.wait(tick):
                healthy = self.is_healthy()
                if interval and healthy and time.monotonic() - last_ping >= interval:
                    sd.notify("WATCHDOG=1")
                    last_ping = time.monotonic()
                if healthy != fed:
                    fed = healthy
                    if healthy:
                        log.info("scan handling recovered; watchdog fed again")
                    else:
                        log.error("scan handler stalled for more than %.1fs; watchdog no longer fed",
                                  self.stall_after_s)
                    sd.notify(f"STATUS={self.status_line()}")
        finally:
            sd.notify("STOPPING=1")
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def is_healthy(self) -> bool:
        """True when scan handling is idle or made progress within ``stall_after_s`` and delivery runs."""
        busy_since = self._busy_since
        if busy_since is not None and time.monotonic() - busy_since > self.stall_after_s:
            return False
        return self.delivery is None or self.delivery.is_alive()

    def status_line(self) -> str:
        """A one-line summary for systemd's STATUS= (no personal data)."""
        pending = self.cache.outbox_pending() if self.cache is not None else 0
        online = bool(self.transport is not None and self.transport.is_connected)
        return (f"gate {self.gate_id}: turnstile {self.cycle.state}, scans {self.scans_handled}, "
                f"outbox {pending}, {'online' if online else 'offline'}"
                + ("" if self.is_healthy() else ", SCAN HANDLER STALLED"))

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
            self._busy_since = time.monotonic()
            try:
                return self._handle_scan(event, now or self._clock())
            except Exception:
                log.exception("scan handling failed")
                self._safe(self.indicator.error)
                return Decision(False, Reason.INTERNAL_ERROR), None
            finally:
                self._busy_since = None
                with self._handled:
                    self.scans_handled += 1
                    self._handled.notify_all()

    def _handle_scan(self, event: ScanEvent, now: datetime) -> tuple[Decision, CheckIn | None]:
        if self.cache is None:
            raise RuntimeError("gate not started")
        if event.reason is not Reason.OK or event.text is None:
            decision = Decision(False, event.reason if event.reason is not Reason.OK else Reason.MALFORMED)
        else:
            decision = self._decide(event.text, self.cache, now, self.site_id,
                                    Direction(self.config.gate.direction))
        checkin = self._admit(decision, now, manual=False)
        if checkin is not None:
            log.info("scan decided checkin_id=%s allowed=%s reason=%s meeting_id=%s delegate_id=%s source=%s",
                     checkin.id, decision.allowed, decision.reason.value, decision.meeting_id,
                     decision.delegate_id, event.source)
            return decision, checkin
        return Decision(False, Reason.INTERNAL_ERROR), None

    def manual_open(self) -> CheckIn | None:
        """The guard's manual-open button: open once, recorded as a manual check-in (reason manual_open).

        Ignored while the emergency input holds the turnstile open. Returns the check-in, or None.
        """
        if self.cycle.emergency:
            log.info("manual open ignored: emergency input active, turnstile already open")
            return None
        if self.mode == "lockdown":
            log.warning("manual open ignored: gate locked down by central")
            self._safe(self.indicator.refused)
            return None
        if self.cache is None:
            log.warning("manual open ignored: gate not started")
            return None
        # Called on gpiozero's input thread, which also carries the passage sensor: never wait long here.
        if not self._scan_lock.acquire(timeout=2.0):
            log.error("manual open not done: scan handling is stalled")
            self._safe(self.indicator.error)
            return None
        try:
            checkin = self._admit(Decision(True, Reason.MANUAL_OPEN), self._clock(), manual=True)
        finally:
            self._scan_lock.release()
        if checkin is not None:
            log.info("manual open checkin_id=%s", checkin.id)
        return checkin

    def remote_open(self, *, operator: str, command_id: uuid.UUID, meeting_id: int | None = None,
                    delegate_id: int | None = None) -> CheckIn | None:
        """Central's "open" command: one manual cycle, recorded as a manual check-in naming ``operator`` and
        the command (and the admitted person when given). Returns the check-in, or None when not recorded."""
        if self.cache is None:
            log.warning("remote open not done: gate not started")
            return None
        entry = None
        if meeting_id is not None and delegate_id is not None:
            try:
                entry = self.cache.delegate(meeting_id, delegate_id)
            except Exception:
                log.exception("delegate lookup failed for a remote open")
        decision = Decision(True, Reason.MANUAL_OPEN, meeting_id=meeting_id, delegate_id=delegate_id,
                            name=entry.name if entry else None, organisation=entry.organisation if entry else None,
                            position=entry.position if entry else None)
        if not self._scan_lock.acquire(timeout=2.0):
            log.error("remote open not done: scan handling is stalled")
            return None
        try:
            checkin = self._admit(decision, self._clock(), manual=True,
                                  extra={"operator": operator, "command_id": command_id})
        finally:
            self._scan_lock.release()
        if checkin is not None:
            log.info("remote open checkin_id=%s command_id=%s operator=%s", checkin.id, command_id, operator)
        return checkin

    def _admit(self, decision: Decision, now: datetime, manual: bool,
               extra: dict[str, Any] | None = None) -> CheckIn | None:
        """Record ``decision`` (committed before any relay action), then act; None if it was not recorded.

        ``extra``: further CheckIn fields (``operator``, ``command_id`` of a remote open)."""
        assert self.cache is not None
        via_cycle = decision.allowed and self.cycle.has_sensor and not self.cycle.emergency
        if not decision.allowed:
            outcome, completed = Outcome.REFUSED, None
        elif via_cycle:
            outcome, completed = Outcome.UNKNOWN, None  # provisional until the cycle reports
        else:
            outcome, completed = Outcome.ENTERED, now
        checkin = CheckIn(
            id=uuid.uuid4(), gate_id=self.gate_id, site_id=self.site_id,
            direction=Direction(self.config.gate.direction), scanned_at=now, allowed=decision.allowed,
            reason=decision.reason, outcome=outcome, meeting_id=decision.meeting_id,
            delegate_id=decision.delegate_id, scheme=decision.scheme, credential=decision.credential,
            manual=manual, completed_at=completed, **(extra or {}),
        )
        if via_cycle:
            with self._awaiting_lock:
                self._awaiting[str(checkin.id)] = checkin
        try:
            self.cache.add_checkin(checkin, encode(checkin), now, awaiting_outcome=via_cycle,
                                   consumed=outcome is Outcome.ENTERED)
        except Exception:
            # Cannot record: do not open (an unrecorded passage is worse than a refused one).
            log.exception("check-in not recorded; turnstile stays locked checkin_id=%s", checkin.id)
            with self._awaiting_lock:
                self._awaiting.pop(str(checkin.id), None)
            self._safe(self.indicator.error)
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
        self._remember(ScanRecord(
            at=now, checkin_id=str(checkin.id), allowed=decision.allowed, reason=decision.reason,
            meeting_id=decision.meeting_id, delegate_id=decision.delegate_id, name=decision.name,
            organisation=decision.organisation, position=decision.position, manual=manual,
            outcome=None if via_cycle else outcome.value,
        ))
        if outcome is Outcome.ENTERED:
            self._fan_out(checkin)
        if self.delivery is not None:
            self.delivery.kick()
        return checkin

    def _fan_out(self, checkin: CheckIn) -> None:
        """Tell the other gates of the site that a credential was used (entered in or out)."""
        if not checkin.credential or not checkin.allowed:
            return
        publish = getattr(self.transport, "publish_site_checkin", None)
        if publish is None:
            return
        try:
            if not publish(encode(checkin)):
                log.warning("site check-in not handed to the broker now checkin_id=%s", checkin.id)
        except Exception:
            log.exception("site check-in not published checkin_id=%s", checkin.id)

    def _on_site_checkin(self, checkin: CheckIn) -> None:
        """A check-in from another gate of the site: record its passage for anti-passback."""
        if self.cache is None:
            return
        if not (checkin.allowed and checkin.outcome is Outcome.ENTERED and checkin.credential):
            return
        changed = self.cache.record_passage(checkin.credential, str(checkin.id),
                                            checkin.completed_at or checkin.scanned_at, checkin.direction,
                                            checkin.gate_id)
        log.info("site passage recorded checkin_id=%s from_gate=%s direction=%s changed=%s", checkin.id,
                 checkin.gate_id, checkin.direction.value, changed)

    # ----- turnstile cycle listeners

    def _on_outcome(self, checkin_id: str, outcome: Outcome) -> None:
        with self._awaiting_lock:
            checkin = self._awaiting.pop(checkin_id, None)
        if checkin is None or self.cache is None:
            log.warning("outcome for an unknown passage checkin_id=%s outcome=%s", checkin_id, outcome.value)
            return
        now = self._clock()
        completed = None if outcome is Outcome.UNKNOWN else max(now, checkin.scanned_at)
        final = checkin.model_copy(update={"outcome": outcome, "completed_at": completed})
        try:
            self.cache.complete_checkin(final, encode(final), now, consumed=outcome is Outcome.ENTERED)
        except Exception:
            log.exception("outcome not recorded checkin_id=%s outcome=%s", checkin_id, outcome.value)
            self._safe(self.indicator.error)
            return
        with self._recent_lock:
            for index, record in enumerate(self.recent):
                if record.checkin_id == checkin_id:
                    self.recent[index] = dataclasses.replace(record, outcome=outcome.value)
                    break
        log.info("passage recorded checkin_id=%s outcome=%s", checkin_id, outcome.value)
        if outcome is Outcome.ENTERED:
            self._fan_out(final)
        if self.delivery is not None:
            self.delivery.kick()

    def _on_forced(self) -> None:
        if self.cache is None:
            return
        now = self._clock()
        checkin = CheckIn(
            id=uuid.uuid4(), gate_id=self.gate_id, site_id=self.site_id,
            direction=Direction(self.config.gate.direction), scanned_at=now, allowed=False,
            reason=Reason.DOOR_FORCED, outcome=Outcome.ENTERED, meeting_id=None, delegate_id=None, scheme=None,
            credential=None, completed_at=now,
        )
        try:
            self.cache.add_checkin(checkin, encode(checkin), now)
        except Exception:
            log.exception("forced passage not recorded")
            return
        self._remember(ScanRecord(at=now, checkin_id=str(checkin.id), allowed=False, reason=Reason.DOOR_FORCED,
                                  meeting_id=None, delegate_id=None, name=None, organisation=None,
                                  outcome=Outcome.ENTERED.value))
        log.warning("door forced recorded checkin_id=%s", checkin.id)
        if self.delivery is not None:
            self.delivery.kick()

    def _on_emergency(self, active: bool) -> None:
        sd.notify(f"STATUS={self.status_line()}")

    # ----- queries

    def is_consumed(self, credential: str) -> bool:
        """True when a passage with ``credential`` was recorded as entered at this gate."""
        return self.cache is not None and self.cache.is_consumed(credential)

    def wait_for_scans(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` scans have been handled in total; True if reached within ``timeout``."""
        with self._handled:
            return self._handled.wait_for(lambda: self.scans_handled >= count, timeout)

    def scanner_state(self) -> tuple[str, datetime | None, str | None]:
        """The code reader's state for the status page: (status, since, detail).

        status: "ok", "starting", "lost", "ended", "closed" (camera), "ok"/"lost" (serial, HID by their
        open device), "none" before start. ``since`` is when it entered that status, as far as known.
        """
        scanner = self.scanner
        if scanner is None:
            return "none", None, None
        state = getattr(scanner, "state", None)
        if state is not None and hasattr(state, "status"):
            since = self._clock() - timedelta(seconds=max(time.monotonic() - state.since, 0.0))
            return state.status, since, state.detail
        connected = getattr(scanner, "connected", None)
        status = "ok" if connected is None or connected.is_set() else "lost"
        now = time.monotonic()
        if self._scanner_status is None or self._scanner_status[0] != status:
            self._scanner_status = (status, now)
        since = self._clock() - timedelta(seconds=now - self._scanner_status[1])
        detail = None if status == "ok" else "device not open; retrying"
        return status, since, detail

    def status_view(self) -> Any:
        """A snapshot of the gate for the guard's status page (``gate.status.model.GateView``)."""
        from gate.status.model import GateView, ScanView

        transport = self.transport
        cache = self.cache
        status, _, detail = self.scanner_state()
        with self._recent_lock:
            recent = list(self.recent)
        return GateView(
            gate_id=self.gate_id, name=self.config.gate.display_name, site_id=self.site_id,
            direction=self.config.gate.direction,
            online=bool(transport is not None and transport.is_connected),
            online_since=getattr(transport, "online_since", None),
            offline_since=getattr(transport, "offline_since", None),
            cache_seq=cache.seq if cache is not None else 0,
            synced_at=cache.synced_at if cache is not None else None,
            sync_pending=self.refresher.pending,
            emergency=self._status_fields()["emergency"], turnstile_state=self._turnstile_label(),
            scanner_state=status, mode=self.mode,
            scanner_detail=detail, outbox_pending=cache.outbox_pending() if cache is not None else 0,
            recent=[ScanView(at=r.at, allowed=r.allowed, reason=r.reason, name=r.name,
                             organisation=r.organisation, position=r.position, manual=r.manual,
                             outcome=r.outcome) for r in recent],
        )

    # ----- helpers

    def _turnstile_label(self) -> str:
        """The cycle's state, with "released" / "lockdown" when central's command (not the input) rules it."""
        state = self.cycle.state
        mode = self.mode
        if mode == "release" and state == "emergency" and not self._status_fields()["emergency"]:
            return "released"
        if mode == "lockdown" and state == "locked":
            return "lockdown"
        return state

    def _remember(self, record: ScanRecord) -> None:
        with self._recent_lock:
            self.recent.appendleft(record)

    @staticmethod
    def _safe(action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception:
            log.exception("indicator failed")
