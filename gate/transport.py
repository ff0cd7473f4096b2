"""MQTT transport of a gate (paho-mqtt 2.x): status with last will, check-ins out, acknowledgements in,
central's change streams in (its site's own, and the legacy global one an older central publishes), the site's
check-in fan-out both ways, heartbeats out, central's commands in
(handed raw to ``on_command``) and their results out.

The client (:func:`protocols.mqtt.make_client`) uses a stable id and a persistent session so QoS 1 messages survive
reconnects: changes published while the gate is away are delivered when it comes back. Every incoming payload
is decoded with ``protocols.payloads.decode`` (changes by the receiver of ``on_change``); bad ones are logged
and dropped, and nothing raised by a payload or a callback escapes into paho's network thread.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from protocols import topics
from protocols.mqtt import ClientSettings, LastWill, TlsFiles, certificate_expiry, make_client
from protocols.payloads import Ack, CheckIn, GateStatus, PayloadError, decode, decode_acks, encode

log = logging.getLogger(__name__)

RECONNECT_FAST_S = (0.25, 1.0)
"""Reconnect delays (first, ceiling) in seconds while the broker is unreachable: a gate back from an outage of
any length is connected, and has the changes its session kept, within about a second of its network returning.
An unreachable broker costs nothing (the connection attempt never reaches it, or is refused by its host)."""
RECONNECT_REFUSED_S = (5.0, 60.0)
"""Reconnect delays once the broker answered and refused this gate (credentials, certificate, ACL): each attempt
then costs the broker a handshake and a password check, so they slow down until one succeeds."""
RECONNECT_JITTER = 0.25
"""Each gate stretches its delays by a random factor up to this much, so a fleet does not knock in step."""

CERTIFICATE_WARNING = timedelta(days=14)
"""A client certificate ending within this long is logged as a warning at start (renew with ``gate-cert``)."""

AckHandler = Callable[[Ack], None]
ChangeHandler = Callable[[bytes], object]
SiteCheckInHandler = Callable[[CheckIn], None]
StatusFields = Callable[[], dict[str, Any]]


class Transport(Protocol):
    """Everything the gate uses of its link to central and the site (the MQTT transport, or a test double).

    The ``on_*`` handlers and ``status_fields`` are set by the gate before :meth:`start`.
    """

    on_ack: AckHandler | None
    on_connected: Callable[[], None] | None
    on_change: ChangeHandler | None
    on_site_checkin: SiteCheckInHandler | None
    on_session_lost: Callable[[], None] | None
    on_command: Callable[[bytes], None] | None
    status_fields: StatusFields | None

    @property
    def is_connected(self) -> bool:
        """True while connected to the broker."""

    @property
    def online_since(self) -> datetime | None:
        """When the current connection was made (None while offline)."""

    @property
    def offline_since(self) -> datetime | None:
        """Since when the gate has been disconnected (None while online)."""

    def start(self) -> None:
        """Connect in the background and keep reconnecting."""

    def publish_checkin(self, payload: bytes) -> bool:
        """Publish one encoded CheckIn with QoS 1; False when it could not be handed to the broker now."""

    def publish_site_checkin(self, payload: bytes) -> bool:
        """Publish one encoded CheckIn to the other gates of the site; False when not possible now."""

    def publish_command_result(self, payload: bytes) -> bool:
        """Publish one encoded CommandResult (QoS 1)."""

    def publish_heartbeat(self, payload: bytes) -> bool:
        """Publish one encoded Heartbeat; False when not connected."""

    def publish_status(self) -> bool:
        """Re-publish the retained online status (after a mode change); False when not connected."""

    def publish_offline(self, timeout: float = 2.0) -> None:
        """Publish the retained offline status (clean shutdown; the last will covers crashes)."""

    def stop(self) -> None:
        """Disconnect and stop the network thread."""


def gate_client_id(gate_id: str) -> str:
    """The gate's stable MQTT client id (its persistent session is kept under it)."""
    return f"vaora-gate-{gate_id}"


def log_certificate_expiry(tls: TlsFiles, now: datetime) -> None:
    """Log when the gate's client certificate ends: an error once it has (the broker refuses the gate; it keeps
    deciding offline), a warning within :data:`CERTIFICATE_WARNING`, else an info line."""
    not_after = certificate_expiry(tls)
    if not_after is None:
        return
    if not_after <= now:
        log.error("mqtt client certificate expired at %s: the broker refuses this gate; renew it with "
                  "vaora-central gate-cert cert_file=%s", not_after.isoformat(), tls.cert_file)
    elif not_after - now <= CERTIFICATE_WARNING:
        log.warning("mqtt client certificate expires at %s (in %d days): renew it with vaora-central gate-cert "
                    "cert_file=%s", not_after.isoformat(), (not_after - now).days, tls.cert_file)
    else:
        log.info("mqtt client certificate valid until %s cert_file=%s", not_after.isoformat(), tls.cert_file)


class MqttTransport:
    """The gate's MQTT client, built by :func:`protocols.mqtt.make_client`: stable id, persistent session, the
    retained "offline" status as last will, reconnect backoff with jitter, and TLS when ``tls`` is given."""

    def __init__(
        self,
        gate_id: str,
        host: str,
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        software_version: str | None = None,
        on_ack: AckHandler | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        site_id: str | None = None,
        tls: TlsFiles | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.gate_id = gate_id
        self.site_id = site_id
        self.on_change: ChangeHandler | None = None
        self.on_site_checkin: SiteCheckInHandler | None = None
        # Called when the broker had no session for us (first start, or it lost it): changes published
        # meanwhile are gone, so the gate should load a fresh snapshot.
        self.on_session_lost: Callable[[], None] | None = None
        # Central's commands (raw payloads; the gate's CommandHandler validates them) and the extra fields of
        # the retained status (emergency, mode, fail_mode).
        self.on_command: Callable[[bytes], None] | None = None
        self.status_fields: StatusFields | None = None
        self._subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self._legacy_mid: int | None = None
        self._legacy_answered = False
        self._main_subscribed = False
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.software_version = software_version
        self.on_ack = on_ack
        self.on_connected: Callable[[], None] | None = None
        self._clock = clock
        self._connected = threading.Event()
        self._online_since: datetime | None = None
        self._offline_since: datetime | None = clock()
        offline = GateStatus(gate_id=gate_id, state="offline", software_version=software_version)
        self.client = make_client(ClientSettings(
            client_id=gate_client_id(gate_id), username=username, password=password, persistent=True,
            will=LastWill(topics.gate_status(gate_id), encode(offline)), tls=tls,
        ))
        self._jitter = 1.0 + (rng or random).uniform(0.0, RECONNECT_JITTER)
        self._reconnect_delays(RECONNECT_FAST_S)
        if tls is not None:
            log_certificate_expiry(tls, clock())
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    @property
    def is_connected(self) -> bool:
        """True while connected to the broker."""
        return self._connected.is_set()

    @property
    def online_since(self) -> datetime | None:
        """When the current connection was made (None while offline)."""
        return self._online_since if self.is_connected else None

    @property
    def offline_since(self) -> datetime | None:
        """Since when the gate has been disconnected: since start-up before the first connection, else since
        the connection was lost (None while online)."""
        return None if self.is_connected else self._offline_since

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or ``timeout`` seconds passed; return whether connected."""
        return self._connected.wait(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until the broker confirmed this connection's subscriptions (acks, changes, site check-ins)."""
        return self._subscribed.wait(timeout)

    @property
    def reconnect_delays(self) -> tuple[float, float]:
        """The reconnect delays in force (first, ceiling), in seconds."""
        return self._delays

    def _reconnect_delays(self, delays: tuple[float, float]) -> None:
        first, ceiling = (delay * self._jitter for delay in delays)
        self._delays = (first, ceiling)
        self.client.reconnect_delay_set(first, ceiling)  # type: ignore[arg-type]  # paho sleeps any float

    def start(self) -> None:
        """Connect in the background; paho's network thread keeps reconnecting, every second at most while the
        broker is unreachable (:data:`RECONNECT_FAST_S`), slower once it refused the gate
        (:data:`RECONNECT_REFUSED_S`)."""
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()

    def publish_checkin(self, payload: bytes) -> bool:
        """Publish one encoded CheckIn (QoS 1, not retained)."""
        if not self.is_connected:
            return False
        info = self.client.publish(topics.gate_checkins(self.gate_id), payload, qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def publish_site_checkin(self, payload: bytes) -> bool:
        """Publish one encoded CheckIn to the other gates of the site (QoS 1); False when not possible now.

        While disconnected paho keeps the QoS 1 message and sends it after reconnecting.
        """
        if self.site_id is None:
            return False
        info = self.client.publish(topics.site_checkins(self.site_id), payload, qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def publish_command_result(self, payload: bytes) -> bool:
        """Publish one encoded CommandResult (QoS 1); paho keeps it while disconnected and sends it later."""
        info = self.client.publish(topics.gate_command_results(self.gate_id), payload, qos=1)
        return info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)

    def _online_status(self) -> GateStatus:
        extra: dict[str, Any] = {}
        if self.status_fields is not None:
            try:
                extra = self.status_fields()
            except Exception:
                log.exception("status fields unavailable")
        return GateStatus(gate_id=self.gate_id, state="online", since=self._online_since or self._clock(),
                          software_version=self.software_version, **extra)

    def publish_status(self) -> bool:
        """Re-publish the retained online status (after a mode change); False when not connected."""
        if not self.is_connected:
            return False
        info = self.client.publish(topics.gate_status(self.gate_id), encode(self._online_status()), qos=1,
                                   retain=True)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def publish_heartbeat(self, payload: bytes) -> bool:
        """Publish one encoded Heartbeat (QoS 0); False when not connected."""
        if not self.is_connected:
            return False
        info = self.client.publish(topics.gate_heartbeat(self.gate_id), payload, qos=0)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def publish_offline(self, timeout: float = 2.0) -> None:
        """Publish the retained offline status and wait (bounded) for the broker to take it."""
        if not self.is_connected:
            return
        status = GateStatus(gate_id=self.gate_id, state="offline", since=self._clock(),
                            software_version=self.software_version)
        info = self.client.publish(topics.gate_status(self.gate_id), encode(status), qos=1, retain=True)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            log.warning("offline status not confirmed: %s", exc)

    def stop(self) -> None:
        """Disconnect cleanly (no last will) and stop the network thread."""
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            self._went_offline()

    # ----- paho callbacks (network thread)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("mqtt connect refused host=%s port=%d reason=%s", self.host, self.port, reason_code)
            self._reconnect_delays(RECONNECT_REFUSED_S)
            return
        self._reconnect_delays(RECONNECT_FAST_S)
        self._online_since = self._clock()
        client.publish(topics.gate_status(self.gate_id), encode(self._online_status()), qos=1, retain=True)
        subscriptions = [(topics.gate_acks(self.gate_id), 1), (topics.gate_commands(self.gate_id), 1)]
        if self.site_id is not None:
            subscriptions += [(topics.site_changes(self.site_id), 1), (topics.site_checkins(self.site_id), 1)]
        self._subscribed.clear()
        self._main_subscribed = False
        _, self._subscribe_mid = client.subscribe(subscriptions)
        # The legacy global stream, in a SUBSCRIBE of its own: a central older than the per-site streams publishes
        # only there. A broker whose ACL no longer lets gates read it (VAORA_LEGACY_CHANGE_STREAM=0) may refuse it;
        # that refusal must not count as the subscriptions above failing.
        self._legacy_answered = False
        _, self._legacy_mid = client.subscribe(topics.CHANGES, qos=1)
        self._offline_since = None
        self._connected.set()
        log.info("mqtt connected host=%s port=%d session_present=%s", self.host, self.port,
                 getattr(flags, "session_present", None))
        if self.on_connected is not None:
            try:
                self.on_connected()
            except Exception:
                log.exception("on_connected handler failed")
        if not getattr(flags, "session_present", False) and self.on_session_lost is not None:
            try:
                self.on_session_lost()
            except Exception:
                log.exception("on_session_lost handler failed")

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any,
                      properties: Any) -> None:
        failed = [str(code) for code in reason_codes if getattr(code, "is_failure", False)]
        if mid == self._legacy_mid:
            self._legacy_answered = True
            if failed:
                log.info("legacy change stream %s not granted (central publishes per site only)", topics.CHANGES)
        elif mid == self._subscribe_mid:
            if failed:
                log.error("mqtt subscriptions refused by the broker reasons=%s", ",".join(failed))
                return
            self._main_subscribed = True
        else:
            return
        if self._main_subscribed and self._legacy_answered:
            self._subscribed.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log.warning("mqtt broker unreachable host=%s port=%d; retrying", self.host, self.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self._went_offline()
        log.warning("mqtt disconnected reason=%s", reason_code)

    def _went_offline(self) -> None:
        if self._connected.is_set() or self._offline_since is None:
            self._offline_since = self._clock()
        self._connected.clear()
        self._subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            if message.topic == topics.gate_acks(self.gate_id):
                self._handle_ack(message)
            elif message.topic == topics.CHANGES or (
                    self.site_id is not None and message.topic == topics.site_changes(self.site_id)):
                if self.on_change is not None:
                    self.on_change(bytes(message.payload))
            elif self.site_id is not None and message.topic == topics.site_checkins(self.site_id):
                self._handle_site_checkin(message)
            elif message.topic == topics.gate_commands(self.gate_id):
                if self.on_command is not None:
                    self.on_command(bytes(message.payload))
                else:
                    log.warning("command dropped: no command handler")
            else:
                log.warning("message on unexpected topic=%s dropped", message.topic)
        except Exception:
            log.exception("message handler failed topic=%s", message.topic)

    def _handle_site_checkin(self, message: mqtt.MQTTMessage) -> None:
        try:
            checkin = decode(CheckIn, message.payload)
        except PayloadError as exc:
            log.warning("bad site check-in dropped reason=%s detail=%s", exc.reason.value, exc.detail)
            return
        if checkin.gate_id == self.gate_id:
            return  # our own fan-out coming back
        if checkin.site_id != self.site_id:
            log.warning("site check-in of another site=%s dropped", checkin.site_id)
            return
        if self.on_site_checkin is not None:
            self.on_site_checkin(checkin)

    def _handle_ack(self, message: mqtt.MQTTMessage) -> None:
        try:
            acks = decode_acks(message.payload)  # one Ack, or an AckBatch of one ingest batch
        except PayloadError as exc:
            log.warning("bad ack dropped reason=%s detail=%s", exc.reason.value, exc.detail)
            return
        for ack in acks:
            if ack.gate_id != self.gate_id:
                log.warning("ack for another gate=%s dropped", ack.gate_id)
                continue
            if self.on_ack is None:
                return
            try:
                self.on_ack(ack)
            except Exception:
                log.exception("ack handler failed checkin_id=%s", ack.checkin_id)
