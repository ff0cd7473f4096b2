"""The gate controller's composition root: builds the pins, the turnstile cycle, the admission, the store, the
transport, delivery, sync, commands, heartbeat and status page from the config, and owns start-up and shutdown.

``Gate`` is usable in-process (tests start several, each with its own MockFactory); ``run()`` blocks in the
service loop (:mod:`gate.service`: SIGTERM/SIGINT, systemd READY/WATCHDOG/STATUS/STOPPING, housekeeping).

Where things happen: :mod:`gate.admission` decides, records and acts on scans, manual and remote opens and the
cycle's outcomes, and fans passages out to the site; :mod:`gate.pins` claims the hardware; :mod:`gate.cycle`
drives the turnstile; :mod:`gate.status.view` builds the guard's page and the STATUS line.

Sync: the snapshot is loaded at start (when central answers); then :class:`gate.follow.ChangeFollower` applies
central's change stream, and :class:`gate.follow.SnapshotRefresher` fetches a new snapshot in the background
after a gap or a failed start-up fetch, with backoff. A heartbeat goes out every ``[mqtt] heartbeat_seconds``.
Commands: central's open / lockdown / release / resume / resync arrive on the gate's command topic and are
handled by :mod:`gate.commands`; the mode they set is an input of ``decide()``, which refuses every scan during
a lockdown; a release holds the turnstile open like the emergency input.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from protocols import systemd as sd
from protocols.payloads import Ack, CheckIn, Direction, GateMode, Heartbeat

from . import __version__
from .admission import Admission
from .clock import CentralClock
from .commands import CommandHandler
from .config import GateConfig
from .cycle import TurnstileCycle
from .decision import Decision, decide
from .delivery import DeliveryLoop
from .follow import ChangeFollower, SnapshotRefresher, refresh_from_central
from .heartbeat import HeartbeatLoop
from .pins import claim_pins, default_pin_factory
from .recent import RecentScans
from .scanners import ScanEvent, Scanner, build_scanner
from .service import OutboxRetention, is_healthy, serve
from .status.model import GateView
from .status.server import StatusServer, start_status_server
from .status.view import ScannerState, ScannerWatch, gate_view, status_line
from .store import CommandStore, GateStore
from .sync import fetch_snapshot
from .transport import MqttTransport, Transport

log = logging.getLogger(__name__)

DEFAULT_STALL_S = 5.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Gate:
    """One gate unit.

    ``pin_factory``: a gpiozero pin factory (default: :func:`gate.pins.default_pin_factory`). ``scanner`` /
    ``transport``: injected implementations (default: built from the config). ``clock``: the aware UTC "now"
    used when ``handle_scan`` is not given one. ``wall_clock``: the time delivery and outbox pruning go by.
    ``decider``: the decision function (default :func:`gate.decision.decide`). ``stall_after_s``: a scan
    handler busy longer than this is stalled, and the systemd watchdog is no longer fed. ``resync_backoff_s``
    / ``resync_max_backoff_s``: retry delays of the background snapshot fetch; ``resync_min_interval_s``: least
    time between two fetches. ``monotonic``: the clock :class:`gate.clock.CentralClock` ties its samples to
    (it measures central's clock from acks; decisions, commands, heartbeats and check-ins use it). A pin that
    cannot be claimed raises :class:`gate.turnstile.PinClaimError` naming the config key.
    """

    def __init__(
        self,
        config: GateConfig,
        pin_factory: Any = None,
        scanner: Scanner | None = None,
        transport: Transport | None = None,
        clock: Callable[[], datetime] = _utcnow,
        fetch: Callable[..., Any] = fetch_snapshot,
        flush_timeout: float = 2.0,
        delivery_poll_s: float = 0.5,
        decider: Callable[..., Decision] = decide,
        stall_after_s: float = DEFAULT_STALL_S,
        resync_backoff_s: float = 1.0,
        resync_max_backoff_s: float = 60.0,
        resync_min_interval_s: float = 1.0,
        wall_clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.gate_id = config.gate.id
        self.site_id = config.gate.site
        self._clock = clock
        self._wall_clock = wall_clock
        self._fetch = fetch
        self.flush_timeout = flush_timeout
        self.delivery_poll_s = delivery_poll_s
        self.stall_after_s = stall_after_s
        self.follower: ChangeFollower | None = None
        self.refresher = SnapshotRefresher(self.refresh_snapshot, initial_backoff_s=resync_backoff_s,
                                           max_backoff_s=resync_max_backoff_s,
                                           min_interval_s=resync_min_interval_s)
        self.heartbeat: HeartbeatLoop | None = None
        self.commands: CommandHandler | None = None
        self.pin_factory = pin_factory if pin_factory is not None else default_pin_factory(config.gate.simulate)
        self.pins = claim_pins(config, self.pin_factory)
        self.turnstile, self.indicator = self.pins.turnstile, self.pins.indicator
        self.cycle = TurnstileCycle(
            self.turnstile, self.indicator, config.turnstile.unlock_seconds, sensor=self.pins.sensor,
            manual_button=self.pins.manual_button, emergency=self.pins.emergency,
            sensor_debounce_s=config.turnstile.sensor_debounce_ms / 1000, on_emergency=self._on_emergency,
        )
        self.central_clock = CentralClock(clock, monotonic)
        """Central's clock as this gate measures it from central's acks (gate.clock)."""
        self.admission = Admission(
            gate_id=self.gate_id, site_id=self.site_id, direction=Direction(config.gate.direction),
            cycle=self.cycle, turnstile=self.turnstile, indicator=self.indicator, decider=decider,
            mode=lambda: self.mode, clock=clock, debounce_s=config.scanner.debounce_ms / 1000,
            clock_offset=self.central_clock.offset_s,
        )
        self.scanner = scanner
        self.transport = transport
        self.cache: GateStore | None = None
        self.delivery: DeliveryLoop | None = None
        self.retention: OutboxRetention | None = None
        self.status_server: StatusServer | None = None
        self._scanner_watch = ScannerWatch(clock)
        self.scanner_watch = self._scanner_watch
        self._started = False
        self._stopped = threading.Event()

    # ----- lifecycle

    def start(self) -> None:
        """Open the store, finish interrupted cycles, refresh from central if reachable, connect, start
        delivery, the inputs, the status page and the scanner."""
        if self._started:
            raise RuntimeError("gate already started")
        self._started = True
        self.cache = store = GateStore(self.config.gate.data_dir)
        self.follower = ChangeFollower(store, self.refresher.request, clock=self._clock, site_id=self.site_id)
        self.admission.attach(store, self._transport(), None)  # delivery starts after the snapshot
        self.admission.finalise_interrupted()
        if not self.refresh_snapshot():
            self.refresher.request()  # keep trying in the background; decide from the cache meanwhile
        self.refresher.start()
        transport = self._transport()
        # Delivery times resends by the wall clock, not the (possibly frozen) decision clock.
        self.delivery = DeliveryLoop(store, transport, resend_s=self.config.mqtt.resend_seconds,
                                     poll_s=self.delivery_poll_s, clock=self._wall_clock)
        self.admission.attach(store, transport, self.delivery)
        self.retention = OutboxRetention(store, timedelta(hours=self.config.outbox.keep_delivered_hours),
                                         self._wall_clock)
        self.commands = CommandHandler(self, CommandStore(store.path), transport.publish_command_result,
                                       max_age_s=self.config.commands.max_age_seconds, clock=self._clock,
                                       clock_offset=self.central_clock.offset_s)
        transport.on_ack, transport.on_connected = self._on_ack, self.delivery.kick
        transport.on_change, transport.on_site_checkin = self.follower.handle_payload, self.admission.on_site_checkin
        transport.on_session_lost, transport.on_command = self.refresher.request, self.commands.submit
        transport.status_fields = self.status_fields
        transport.start()
        self.delivery.start()
        self.heartbeat = HeartbeatLoop(self._heartbeat, transport.publish_heartbeat,
                                       self.config.mqtt.heartbeat_seconds)
        self.heartbeat.start()
        self.cycle.start()
        self.commands.start()  # restores a persisted lockdown/release before the first scan
        if self.config.status.enabled:
            snapshot = self.camera_snapshot if self.config.status.camera_snapshot else None
            self.status_server = start_status_server(self, self.config.status.listen, self.config.status.port,
                                                     snapshot)
        if self.scanner is None:
            self.scanner = build_scanner(self.config.scanner)
        self.scanner.start(self.on_scan)
        log.info("gate started gate_id=%s site_id=%s fail_mode=%s passage_sensor=%s cache_seq=%d "
                 "outbox_pending=%d", self.gate_id, self.site_id, self.config.gate.fail_mode,
                 self.cycle.has_sensor, store.seq, store.outbox_pending())

    def _transport(self) -> Transport:
        if self.transport is None:
            mqtt = self.config.mqtt
            self.transport = MqttTransport(self.gate_id, mqtt.host, mqtt.port, username=mqtt.username,
                                           password=mqtt.resolve_password(), keepalive=mqtt.keepalive,
                                           software_version=__version__, site_id=self.site_id,
                                           tls=mqtt.tls_files())
        return self.transport

    def refresh_snapshot(self) -> bool:
        """Load a snapshot from central (:func:`gate.follow.refresh_from_central`); returns success."""
        assert self.follower is not None, "gate not started"
        return refresh_from_central(self.config.central, self.gate_id, self._fetch, self.follower)

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
        steps += [("snapshot refresh", self.refresher.stop), ("relay", self.turnstile.release_for_shutdown),
                  ("indicator", self.indicator.off)]
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
        steps.extend(self.pins.close_steps())
        for name, step in steps:
            try:
                step()
            except Exception:
                log.exception("shutdown step failed step=%s", name)
        log.info("gate stopped gate_id=%s", self.gate_id)

    def run(self, stop_requested: threading.Event | None = None) -> None:
        """Start, serve until SIGTERM/SIGINT (or ``stop_requested`` is set), then stop (:func:`gate.service.serve`)."""
        serve(self, stop_requested)

    def housekeeping(self) -> None:
        """The service loop's periodic work: prune delivered outbox rows past their retention."""
        if self.retention is not None:
            self.retention.tick()

    def is_healthy(self) -> bool:
        """True when scan handling is idle or made progress within ``stall_after_s`` and delivery runs."""
        return is_healthy(self.admission.busy_since, self.stall_after_s, self.delivery)

    # ----- mode and status

    @property
    def mode(self) -> GateMode:
        """The mode set by central's commands (normal when the gate takes no commands)."""
        return self.commands.mode if self.commands is not None else GateMode.NORMAL

    def status_fields(self) -> dict[str, Any]:
        """emergency (the physical input), mode and fail_mode, for heartbeats and the retained status."""
        commands = self.commands
        emergency = commands.emergency_input_active() if commands is not None else self.cycle.emergency
        return {"emergency": emergency, "mode": self.mode, "fail_mode": self.config.gate.fail_mode}

    def _heartbeat(self) -> Heartbeat:
        """The heartbeat to publish now: the gate's own clock and its estimated offset to central's."""
        cache = self.cache
        return Heartbeat(gate_id=self.gate_id, sent_at=self._clock(), cache_seq=cache.seq if cache else 0,
                         outbox_pending=cache.outbox_pending() if cache else 0, software_version=__version__,
                         clock_offset_s=self.central_clock.offset_s(), **self.status_fields())

    def _on_ack(self, ack: Ack) -> None:
        """Central's ack: a sample of the clock offset (gate.clock), then delivery."""
        self.central_clock.observe(ack.sent_at, ack.gate_time)
        assert self.delivery is not None
        self.delivery.handle_ack(ack)

    def _on_emergency(self, active: bool) -> None:
        """The emergency input changed: tell systemd, and central at once (the retained status carries it), so the
        dashboard and the fleet page raise or clear the alarm within a second instead of at the next heartbeat."""
        sd.notify(f"STATUS={self.status_line()}")
        transport = self.transport
        if transport is None:
            return
        try:
            transport.publish_status()
        except Exception:
            log.exception("status not republished after the emergency input changed")

    def status_line(self) -> str:
        """A one-line summary for systemd's STATUS= (no personal data)."""
        return status_line(self, self.is_healthy())

    def status_view(self) -> GateView:
        """A snapshot of the gate for the guard's status page."""
        return gate_view(self)

    def camera_snapshot(self) -> bytes | None:
        """The camera's last frame as a small JPEG for the guard's page; None without a camera or a frame."""
        take = getattr(self.scanner, "snapshot_jpeg", None)
        return take() if take is not None else None

    def scanner_state(self) -> ScannerState:
        """The code reader's state for the status page: (status, since, detail); see :class:`ScannerWatch`."""
        return self._scanner_watch.state(self.scanner)

    # ----- admission (see gate.admission)

    @property
    def recent(self) -> RecentScans:
        """The last handled scans, newest first."""
        return self.admission.recent

    @property
    def scans_handled(self) -> int:
        """How many scans were handled since start."""
        return self.admission.scans_handled

    def on_scan(self, event: ScanEvent) -> None:
        """The scanners' callback (debounced)."""
        self.admission.on_scan(event)

    def handle_scan(self, event: ScanEvent, now: datetime | None = None) -> tuple[Decision, CheckIn | None]:
        """Decide, record and act on one scan."""
        return self.admission.handle_scan(event, now)

    def manual_open(self) -> CheckIn | None:
        """The guard's manual open."""
        return self.admission.manual_open()

    def is_consumed(self, credential: str) -> bool:
        """True when a passage with ``credential`` was recorded as entered at this gate."""
        return self.admission.is_consumed(credential)

    def wait_for_scans(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` scans have been handled in total; True if reached within ``timeout``."""
        return self.admission.wait_for_scans(count, timeout)
