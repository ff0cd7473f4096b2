"""The ingest worker: receives gate check-ins, heartbeats and status over MQTT, stores them, acknowledges.

Each check-in is stored once (by its UUID) and answered with an :class:`protocols.payloads.Ack` on the
gate's ack topic, which is what lets the gate drop it from its outbox. Bad payloads are logged with their
reason and dropped; nothing raised while handling a message stops the worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

import paho.mqtt.client as mqtt
import peewee

from central.context import utc_now
from central.db import database
from central.services.checkins import record_heartbeat, record_status, store_checkin
from protocols import payloads, topics

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "vaora-central-ingest"
_MODELS: dict[str, type[payloads.CheckIn | payloads.Heartbeat | payloads.GateStatus]] = {
    "checkins": payloads.CheckIn,
    "heartbeat": payloads.Heartbeat,
    "status": payloads.GateStatus,
}
SUBSCRIPTIONS = [(topics.ALL_GATE_CHECKINS, 1), (topics.ALL_GATE_HEARTBEATS, 1), (topics.ALL_GATE_STATUS, 1)]


class IngestWorker:
    """MQTT client that feeds gate messages to the check-in services.

    Use :meth:`start` / :meth:`stop` (background network thread) or :meth:`run_forever` with a stop event.
    The database proxy must be initialised (:func:`central.db.open_database`) first; the network thread
    opens its own connection.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        clock: Callable[[], datetime] = utc_now,
        keepalive: int = 30,
    ) -> None:
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.clock = clock
        self.connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background and start the network thread (reconnects by itself)."""
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def run_forever(self, stop_event: threading.Event) -> None:
        """Run until ``stop_event`` is set."""
        self.start()
        try:
            stop_event.wait()
        finally:
            self.stop()

    def _on_connect(self, client: mqtt.Client, _userdata: object, _flags: object, reason_code: object,
                    _properties: object = None) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("ingest connect refused reason=%s", reason_code)
            return
        client.subscribe(SUBSCRIPTIONS)
        self.connected.set()
        log.info("ingest connected host=%s port=%s", self.host, self.port)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object, reason_code: object,
                       _properties: object = None) -> None:
        self.connected.clear()
        log.info("ingest disconnected reason=%s", reason_code)

    def _on_message(self, client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            self.handle(client, message.topic, message.payload)
        except peewee.DatabaseError:
            log.exception("ingest database error topic=%s; the gate will resend", message.topic)
            if not database.is_closed():
                database.close()
        except Exception:
            log.exception("ingest failed on message topic=%s", message.topic)

    def handle(self, client: mqtt.Client, topic: str, raw: bytes) -> None:
        """Process one message; publishes the Ack for check-ins. Raises only on database failure."""
        gate_id = topics.gate_id_from_topic(topic)
        if gate_id is None:
            log.warning("ingest dropped message on unexpected topic=%s", topic)
            return
        kind = topic.rsplit("/", 1)[1]
        model = _MODELS.get(kind)
        if model is None:
            log.warning("ingest dropped message on unexpected topic=%s", topic)
            return
        try:
            payload = payloads.decode(model, raw)
        except payloads.PayloadError as exc:
            log.warning(
                "ingest dropped bad payload topic=%s reason=%s detail=%s", topic, exc.reason, exc.detail
            )
            return
        database.connect(reuse_if_open=True)
        now = self.clock()
        if isinstance(payload, payloads.CheckIn):
            ack = store_checkin(payload, gate_id, now)
            client.publish(topics.gate_acks(gate_id), payloads.encode(ack), qos=1)
        elif isinstance(payload, payloads.Heartbeat):
            record_heartbeat(payload, gate_id, now)
        else:
            record_status(payload, gate_id, now)
