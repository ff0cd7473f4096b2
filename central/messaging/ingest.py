"""The ingest worker: receives gate check-ins, heartbeats and status over MQTT, stores them, acknowledges.

Each check-in is stored once (by its UUID) and answered with an :class:`protocols.payloads.Ack` on the
gate's ack topic, which is what lets the gate drop it from its outbox. Bad payloads are logged with their
reason and dropped; nothing raised while handling a message stops the worker.

Messages are handed from paho's network thread to one writer thread, which stores them in batches (one
transaction per batch) and then publishes the Acks. A message the worker received but had not stored when it
died is not lost: the gate re-publishes every check-in until its application-level Ack arrives.

A message that cannot be stored (a poison message: a meeting id beyond 64 bits, a row the database refuses) is
dead-lettered alone: logged with its topic and reason (``ingest dead letter topic=... reason=...``) and, for a
check-in, answered with a ``rejected`` Ack carrying the reason, on which the gate stops re-sending it. The rest of
its batch is stored and acknowledged at once (:func:`central.gates.checkins.store_checkins`). Only a database
that cannot be written at all (connection lost, lock held) makes the worker retry the whole batch with back-off.

Site links: every worker also subscribes, without a share group, to the retained bridge states of the site
brokers (``vaora/v1/sites/+/bridge``, "1" or "0") and stores them (:mod:`central.gates.site_links`); any other
payload, or a topic whose site id is invalid, is logged once and changes nothing.

Active/active: with a ``share_group``, the worker subscribes through ``$share/<group>/<filter>`` and the broker
deals each message to one connected member of the group, so N workers split the load. Such a worker uses a
*clean* session under a client id unique to its process: Mosquitto 2.0 keeps dealing a share to a member whose
persistent session is offline (those messages would wait for a process that may never return), while a clean
session leaves the group the moment its connection drops and the others take every new message. What a killed
worker had received but not acknowledged is not redelivered by the broker; the gates re-publish it (their outbox
keeps each check-in until its Ack) and the unique index on the check-in id stores it once, whichever worker gets
it. Acks go to the gate's own topic, so any worker can answer any gate. Without a group: plain subscriptions and
a persistent session under a stable id (one worker; the broker queues messages while it is away).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
import peewee

from central.core.context import utc_now
from central.core.db import database, write_transaction
from central.gates import site_links
from central.gates.checkins import POISON_ERRORS, record_heartbeat, record_status, store_checkins
from central.gates.commands import record_result
from protocols import payloads, topics
from protocols.mqtt import ClientSettings, TlsFiles, make_client
from protocols.reasons import Reason

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "vaora-central-ingest"
_MODELS: dict[topics.GateChannel,
              type[payloads.CheckIn | payloads.Heartbeat | payloads.GateStatus | payloads.CommandResult]] = {
    topics.GateChannel.CHECKINS: payloads.CheckIn,
    topics.GateChannel.HEARTBEAT: payloads.Heartbeat,
    topics.GateChannel.STATUS: payloads.GateStatus,
    topics.GateChannel.COMMAND_RESULTS: payloads.CommandResult,
}
# Acks go out at QoS 0: the gate's outbox re-publishes every check-in until an Ack arrives, so a lost Ack costs
# one duplicate (answered "duplicate"); QoS 1 would add a PUBACK per Ack and a queue of stale Acks in the broker
# for gates that are away, without adding any guarantee.
ACK_QOS = 0
SUBSCRIPTIONS = [(topics.ALL_GATE_CHECKINS, 1), (topics.ALL_GATE_HEARTBEATS, 1), (topics.ALL_GATE_STATUS, 1),
                 (topics.ALL_GATE_COMMAND_RESULTS, 1)]


SITE_LINK_SUBSCRIPTION = (topics.ALL_SITE_BRIDGE_STATES, 1)
"""The site brokers' bridge states, never shared: they are retained (a shared subscription gets no retained
message) and every ingest process writes them idempotently (:mod:`central.gates.site_links`)."""
BAD_PAYLOADS_REMEMBERED = 1000
"""How many distinct bad bridge-state messages a worker remembers having logged (each is logged once)."""


def subscriptions(share_group: str | None) -> list[tuple[str, int]]:
    """The ingest's topic filters and QoS: :data:`SUBSCRIPTIONS`, each behind ``$share/<group>/`` in a group, and
    :data:`SITE_LINK_SUBSCRIPTION` as it is."""
    if not share_group:
        return [*SUBSCRIPTIONS, SITE_LINK_SUBSCRIPTION]
    return [*((topics.shared(share_group, topic_filter), qos) for topic_filter, qos in SUBSCRIPTIONS),
            SITE_LINK_SUBSCRIPTION]


def _dead_letter(topic: str, reason: str, detail: str) -> None:
    """Log a message that could not be stored (a dead letter), with its topic and reason code."""
    log.error("ingest dead letter topic=%s reason=%s detail=%s", topic, reason, detail[:300])


def ack_messages(gate_id: str, acks: list[payloads.Ack]) -> list[bytes]:
    """The messages that acknowledge ``acks`` to one gate: a single :class:`~protocols.payloads.Ack` for one,
    :class:`~protocols.payloads.AckBatch` messages of up to ``MAX_ACKS_PER_BATCH`` for more (one PUBLISH per gate
    per batch instead of one per check-in), with central's clock once per batch
    (:func:`~protocols.payloads.encode_ack_batch`)."""
    if len(acks) == 1:
        return [payloads.encode(acks[0])]
    sent_at = acks[0].sent_at
    size = payloads.MAX_ACKS_PER_BATCH
    return [payloads.encode_ack_batch(gate_id, acks[start:start + size], sent_at)
            for start in range(0, len(acks), size)]


class IngestWorker:
    """MQTT client that feeds gate messages to the check-in services.

    Use :meth:`start` / :meth:`stop` (background network thread) or :meth:`run_forever` with a stop event.
    The database proxy must be initialised (:func:`central.core.db.open_database`) first; the network thread
    opens its own connection. ``batch_size``: most messages stored in one transaction; ``linger_s``: how long
    the writer waits for more messages to join a batch (fewer, larger transactions under load; at most this
    much more ack latency). ``share_group``: consume through ``$share/<group>/...`` with a clean session (see
    the module docstring); None: plain subscriptions and a persistent session under ``client_id``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        tls: TlsFiles | None = None,
        clock: Callable[[], datetime] = utc_now,
        keepalive: int = 30,
        batch_size: int = 500,
        linger_s: float = 0.01,
        share_group: str | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.linger_s = linger_s
        self._inbox: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.clock = clock
        self.connected = threading.Event()
        """Set once connected *and* subscribed (the broker's SUBACK came back): from then on nothing is missed."""
        self.client_id = client_id
        self.subscriptions = subscriptions(share_group)
        # Alone: a persistent session under a stable id (the broker queues gate messages while the worker is away).
        # In a share group: a clean session, so a dead worker's share goes to the living at once.
        self.client = make_client(ClientSettings(client_id=client_id, username=username, password=password,
                                                 persistent=not share_group, tls=tls))
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._busy_since: float | None = None
        self._bad_site_messages: set[tuple[str, bytes]] = set()

    def start(self) -> None:
        """Start the writer thread, connect in the background and start the network thread (reconnects)."""
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect, stop the network thread, then let the writer finish what it already received."""
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()
        if self._writer is not None:
            self._inbox.put(None)
            self._writer.join(30)
            self._writer = None

    def writer_healthy(self, now: float | None = None, stuck_after: float = 60.0) -> bool:
        """True while the writer thread runs and no batch has been in hand for ``stuck_after`` seconds (a
        database that waits forever would leave it stuck; systemd's watchdog then restarts the process)."""
        busy_since = self._busy_since
        current = time.monotonic() if now is None else now
        alive = self._writer is not None and self._writer.is_alive()
        return alive and (busy_since is None or current - busy_since < stuck_after)

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
        client.subscribe(self.subscriptions)
        log.info("ingest connected host=%s port=%s client=%s", self.host, self.port, self.client_id)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int, reason_codes: list[Any],
                      _properties: object = None) -> None:
        failed = [str(code) for code in reason_codes if getattr(code, "is_failure", False)]
        if failed:
            log.error("ingest subscription refused by the broker reasons=%s", ",".join(failed))
            return
        self.connected.set()
        log.info("ingest subscribed topics=%d", len(reason_codes))

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object, reason_code: object,
                       _properties: object = None) -> None:
        self.connected.clear()
        log.info("ingest disconnected reason=%s", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(message)

    def _next_batch(self) -> tuple[list[mqtt.MQTTMessage], bool]:
        first = self._inbox.get()
        if first is None:
            return [], True
        batch, stop = [first], False
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.batch_size:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._inbox.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._next_batch()
            backoff = 0.5
            self._busy_since = time.monotonic() if batch else None
            while batch:
                try:
                    self.handle_batch(self.client, [(m.topic, bytes(m.payload)) for m in batch])
                except peewee.DatabaseError:
                    log.exception("ingest database error; retrying %d messages in %.1f s", len(batch), backoff)
                    if not database.is_closed():
                        database.close()
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                except Exception:
                    log.exception("ingest failed on a batch of %d messages; dropped", len(batch))
                break
            self._busy_since = None

    def handle_batch(self, client: mqtt.Client, messages: list[tuple[str, bytes]]) -> None:
        """Store a batch of messages (check-ins in one transaction) and publish the Acks. Raises only on
        database failure, after which nothing of the batch was acknowledged."""
        checkins: list[tuple[payloads.CheckIn, str]] = []
        checkin_topics: list[str] = []
        others: list[tuple[str, str, payloads.Heartbeat | payloads.GateStatus | payloads.CommandResult]] = []
        for topic, raw in messages:
            if topics.is_site_bridge_topic(topic):
                self._site_link(topic, raw)
                continue
            decoded = self._decode(topic, raw)
            if decoded is None:
                continue
            gate_id, payload = decoded
            if isinstance(payload, payloads.CheckIn):
                checkins.append((payload, gate_id))
                checkin_topics.append(topic)
            else:
                others.append((topic, gate_id, payload))
        if others:
            self._record_all(others)
        if checkins:
            database.connect(reuse_if_open=True)
            acks = store_checkins(checkins, self.clock())
            per_gate: dict[str, list[payloads.Ack]] = {}
            for topic, (_, gate_id), ack in zip(checkin_topics, checkins, acks, strict=True):
                per_gate.setdefault(gate_id, []).append(ack)
                if ack.rejected:
                    _dead_letter(topic, ack.reason or "", f"checkin_id={ack.checkin_id} nacked to gate {gate_id}")
            for gate_id, gate_acks in per_gate.items():
                for message in ack_messages(gate_id, gate_acks):
                    client.publish(topics.gate_acks(gate_id), message, qos=ACK_QOS)

    def _record_all(self, others: list[tuple[str, str, payloads.Heartbeat | payloads.GateStatus
                                              | payloads.CommandResult]]) -> None:
        """Store a batch's heartbeats, statuses and command results in one transaction (one commit, not one per
        message), each in its own savepoint: a value the database refuses costs that message only."""
        database.connect(reuse_if_open=True)
        with write_transaction():
            for topic, gate_id, payload in others:
                try:
                    with database.atomic():
                        self._record(payload, gate_id)
                except POISON_ERRORS as error:
                    _dead_letter(topic, Reason.MALFORMED.value, f"{type(error).__name__}: {error}")

    def _site_link(self, topic: str, raw: bytes) -> None:
        """Store a site's bridge state ("1"/"0"); a bad site id or payload is logged once and changes nothing."""
        site_id = topics.site_id_from_bridge_topic(topic)
        state = site_links.parse_bridge_payload(raw)
        if site_id is None or state is None:
            key = (topic, bytes(raw[:64]))
            if key not in self._bad_site_messages:
                if len(self._bad_site_messages) >= BAD_PAYLOADS_REMEMBERED:
                    self._bad_site_messages.clear()
                self._bad_site_messages.add(key)
                reason = "invalid site id" if site_id is None else "payload is not 1 or 0"
                log.warning("ingest ignored site bridge state topic=%r reason=%s payload=%r", topic[:200], reason,
                            bytes(raw[:64]))
            return
        database.connect(reuse_if_open=True)
        with write_transaction():
            changed = site_links.record_bridge_state(site_id, state, self.clock())
        if changed:
            log.info("site link site=%s state=%s", site_id, state.value)

    def _record(self, payload: payloads.Heartbeat | payloads.GateStatus | payloads.CommandResult,
                gate_id: str) -> None:
        if isinstance(payload, payloads.Heartbeat):
            record_heartbeat(payload, gate_id, self.clock())
        elif isinstance(payload, payloads.CommandResult):
            if payload.gate_id != gate_id:
                log.warning("command result dropped: topic gate %s != payload gate %s", gate_id, payload.gate_id)
            else:
                record_result(payload, self.clock())
        else:
            record_status(payload, gate_id, self.clock())

    @staticmethod
    def _decode(
        topic: str, raw: bytes
    ) -> tuple[str, payloads.CheckIn | payloads.Heartbeat | payloads.GateStatus | payloads.CommandResult] | None:
        parsed = topics.parse_gate_topic(topic)
        if parsed is None:
            log.warning("ingest dropped message on unexpected topic=%s reason=not a gate topic", topic)
            return None
        model = _MODELS.get(parsed.channel)
        if model is None:
            log.warning("ingest dropped message on unexpected topic=%s reason=channel %s is not for central",
                        topic, parsed.channel.value)
            return None
        try:
            return parsed.gate_id, payloads.decode(model, raw)
        except payloads.PayloadError as exc:
            log.warning("ingest dropped bad payload topic=%s reason=%s detail=%s", topic, exc.reason, exc.detail)
            return None

    def handle(self, client: mqtt.Client, topic: str, raw: bytes) -> None:
        """Process one message (see :meth:`handle_batch`)."""
        self.handle_batch(client, [(topic, raw)])
