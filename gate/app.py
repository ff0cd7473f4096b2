"""The gate controller: wires config, cache, decision, turnstile, scanner, transport and delivery together.

``Gate`` is usable in-process (tests start several, each with its own MockFactory); only ``run()`` installs
signal handlers and blocks. Check-in lifecycle here: decide -> write the check-in to the outbox (committed,
synchronous FULL) -> unlock + green, or red -> publish (QoS 1) until central acknowledges. Without a rotation
sensor yet, an allowed decision is recorded as ``entered``.
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from protocols.payloads import CheckIn, Direction, Outcome, encode
from protocols.reasons import Reason

from . import __version__
from .cache import GateCache
from .config import GateConfig
from .decision import Decision, decide
from .delivery import DeliveryLoop
from .scanners import ScanEvent, Scanner, build_scanner
from .sync import SyncError, fetch_snapshot
from .transport import MqttTransport, Transport
from .turnstile import Indicator, Turnstile

log = logging.getLogger(__name__)

RECENT_SCANS = 50


@dataclass(frozen=True)
class ScanRecord:
    """One handled scan, kept in memory for the status page (a later issue)."""

    at: datetime
    checkin_id: str
    allowed: bool
    reason: Reason
    meeting_id: int | None
    delegate_id: int | None
    name: str | None
    organisation: str | None


class Gate:
    """One gate unit.

    ``pin_factory``: a gpiozero pin factory (default: MockFactory when ``config.gate.simulate``,
    else gpiozero's default). ``scanner`` / ``transport``: injected implementations (default: built from
    the config).
    ``clock``: returns the aware UTC "now" used when ``handle_scan`` is not given one.
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
    ) -> None:
        self.config = config
        self.gate_id = config.gate.id
        self.site_id = config.gate.site
        self._clock = clock
        self._fetch = fetch
        self.flush_timeout = flush_timeout
        self.delivery_poll_s = delivery_poll_s
        if pin_factory is None and config.gate.simulate:
            from gpiozero.pins.mock import MockFactory

            pin_factory = MockFactory()
        self.pin_factory = pin_factory
        # Actuators first: the relay goes to its locked rest state as soon as the gate object exists.
        self.turnstile = Turnstile(config.pins.relay, config.gate.fail_mode, config.turnstile.unlock_seconds,
                                   pin_factory=pin_factory)
        self.indicator = Indicator(config.pins.green_led, config.pins.red_led, pin_factory=pin_factory)
        self.scanner = scanner
        self.transport = transport
        self.cache: GateCache | None = None
        self.delivery: DeliveryLoop | None = None
        self.recent: deque[ScanRecord] = deque(maxlen=RECENT_SCANS)
        self._scan_lock = threading.Lock()
        self._handled = threading.Condition()
        self.scans_handled = 0
        self._started = False
        self._stopped = threading.Event()

    # ----- lifecycle

    def start(self) -> None:
        """Open the cache, refresh it from central if reachable, connect, start delivery and the scanner."""
        if self._started:
            raise RuntimeError("gate already started")
        self._started = True
        self.cache = GateCache(self.config.gate.data_dir)
        self.refresh_snapshot()
        if self.transport is None:
            mqtt_cfg = self.config.mqtt
            self.transport = MqttTransport(
                self.gate_id, mqtt_cfg.host, mqtt_cfg.port, username=mqtt_cfg.username,
                password=mqtt_cfg.resolve_password(), keepalive=mqtt_cfg.keepalive,
                software_version=__version__,
            )
        # Delivery times resends by the wall clock, not the (possibly frozen) decision clock.
        self.delivery = DeliveryLoop(self.cache, self.transport, resend_s=self.config.mqtt.resend_seconds,
                                     poll_s=self.delivery_poll_s)
        self.transport.on_ack = self.delivery.handle_ack
        self.transport.on_connected = self.delivery.kick
        self.transport.start()
        self.delivery.start()
        if self.scanner is None:
            self.scanner = build_scanner(self.config.scanner)
        self.scanner.start(self.handle_scan)
        log.info("gate started gate_id=%s site_id=%s fail_mode=%s cache_seq=%d outbox_pending=%d",
                 self.gate_id, self.site_id, self.config.gate.fail_mode, self.cache.seq,
                 self.cache.outbox_pending())

    def refresh_snapshot(self) -> bool:
        """Load a snapshot from central; on failure keep the existing cache and log why. Returns success."""
        assert self.cache is not None
        central = self.config.central
        try:
            token = central.resolve_token()
            snapshot = self._fetch(central.url, self.gate_id, token, central.timeout)
        except SyncError as exc:
            log.warning("snapshot not loaded reason=%s detail=%s; deciding from cached seq=%d",
                        exc.reason.value, exc.detail, self.cache.seq)
            return False
        except OSError as exc:
            log.warning("snapshot not loaded: token unreadable: %s; deciding from cached seq=%d",
                        exc, self.cache.seq)
            return False
        self.cache.load_snapshot(snapshot, self._clock())
        return True

    def stop(self) -> None:
        """Shut down in order: stop reading, relay de-energised, offline status, flush, disconnect.

        Idempotent; safe to call from a signal handler's thread or a test thread.
        """
        if self._stopped.is_set():
            return
        self._stopped.set()
        steps: list[tuple[str, Callable[[], Any]]] = []
        if self.scanner is not None:
            steps.append(("scanner", self.scanner.close))
        steps.append(("relay", self.turnstile.release_for_shutdown))
        steps.append(("indicator", self.indicator.off))
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
        for name, step in steps:
            try:
                step()
            except Exception:
                log.exception("shutdown step failed step=%s", name)
        log.info("gate stopped gate_id=%s", self.gate_id)

    def run(self) -> None:
        """Start, block until SIGTERM/SIGINT, then stop. Call from the main thread only."""

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal received signal=%s", signal.Signals(signum).name)
            stop_requested.set()

        stop_requested = threading.Event()
        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not stop_requested.wait(1.0):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # ----- scans

    def handle_scan(self, event: ScanEvent, now: datetime | None = None) -> tuple[Decision, CheckIn | None]:
        """Decide on one scan, record it durably, then act on the turnstile and LEDs. Never raises.

        Returns the decision and the recorded check-in (None when it could not be recorded; then the
        turnstile stays locked and the LEDs show an error).
        """
        with self._scan_lock:
            try:
                return self._handle_scan(event, now or self._clock())
            except Exception:
                log.exception("scan handling failed")
                self._safe(self.indicator.error)
                return Decision(False, Reason.INTERNAL_ERROR), None
            finally:
                with self._handled:
                    self.scans_handled += 1
                    self._handled.notify_all()

    def _handle_scan(self, event: ScanEvent, now: datetime) -> tuple[Decision, CheckIn | None]:
        if self.cache is None:
            raise RuntimeError("gate not started")
        if event.reason is not Reason.OK or event.text is None:
            decision = Decision(False, event.reason if event.reason is not Reason.OK else Reason.MALFORMED)
        else:
            decision = decide(event.text, self.cache, now, self.site_id)
        checkin = CheckIn(
            id=uuid.uuid4(), gate_id=self.gate_id, site_id=self.site_id,
            direction=Direction(self.config.gate.direction), scanned_at=now, allowed=decision.allowed,
            reason=decision.reason, outcome=Outcome.ENTERED if decision.allowed else Outcome.REFUSED,
            meeting_id=decision.meeting_id, delegate_id=decision.delegate_id, scheme=decision.scheme,
            credential=decision.credential, completed_at=now if decision.allowed else None,
        )
        try:
            self.cache.add_checkin(checkin, encode(checkin), now)
        except Exception:
            # Cannot record: do not open (an unrecorded passage is worse than a refused one).
            log.exception("check-in not recorded; turnstile stays locked checkin_id=%s", checkin.id)
            self._safe(self.indicator.error)
            return Decision(False, Reason.INTERNAL_ERROR), None
        if decision.allowed:
            self.turnstile.unlock()
            self.indicator.allowed()
        else:
            self.indicator.refused()
        log.info("scan decided checkin_id=%s allowed=%s reason=%s meeting_id=%s delegate_id=%s source=%s",
                 checkin.id, decision.allowed, decision.reason.value, decision.meeting_id,
                 decision.delegate_id, event.source)
        self.recent.appendleft(ScanRecord(
            at=now, checkin_id=str(checkin.id), allowed=decision.allowed, reason=decision.reason,
            meeting_id=decision.meeting_id, delegate_id=decision.delegate_id, name=decision.name,
            organisation=decision.organisation,
        ))
        if self.delivery is not None:
            self.delivery.kick()
        return decision, checkin

    def wait_for_scans(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` scans have been handled in total; True if reached within ``timeout``."""
        with self._handled:
            return self._handled.wait_for(lambda: self.scans_handled >= count, timeout)

    @staticmethod
    def _safe(action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception:
            log.exception("indicator failed")
