"""The whole gate against a real Mosquitto: pty scanner -> decision -> outbox -> relay -> MQTT -> ack."""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory

from devtools.broker import LocalBroker
from gate.app import Gate
from gate.config import GateConfig
from gate.scanners import ScanEvent
from gate.store import GateStore
from gate.transport import MqttTransport
from protocols import topics
from protocols.payloads import Ack, AckBatch, CheckIn, GateStatus, Outcome, decode, encode
from protocols.reasons import Reason
from tests.conftest import wait_until
from tests.gate.gate_helpers import NOW, World


class Central:
    """A test MQTT client acting as central: collects check-ins and statuses, publishes acks."""

    def __init__(self, broker: LocalBroker) -> None:
        self.checkins: queue.Queue[CheckIn] = queue.Queue()
        self.statuses: queue.Queue[GateStatus] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"central-{uuid.uuid4().hex[:6]}")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda client, userdata, mid, codes, properties: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([(topics.ALL_GATE_CHECKINS, 1), (topics.ALL_GATE_STATUS, 1)])
        self.client.loop_start()
        wait_until(subscribed.is_set, message="central's test client got no SUBACK")

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic.endswith("/checkins"):
            self.checkins.put(decode(CheckIn, message.payload))
        else:
            self.statuses.put(decode(GateStatus, message.payload))

    def next_checkin(self, timeout: float = 5.0) -> CheckIn:
        return self.checkins.get(timeout=timeout)

    def wait_status(self, state: str, timeout: float = 5.0) -> GateStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.statuses.get(timeout=max(deadline - time.monotonic(), 0.01))
            if status.state == state:
                return status

    def ack(self, checkin: CheckIn, status: str = "stored", reason: str | None = None) -> None:
        payload = Ack(checkin_id=checkin.id, gate_id=checkin.gate_id, status=status,  # type: ignore[arg-type]
                      reason=reason)
        self.client.publish(topics.gate_acks(checkin.gate_id), encode(payload), qos=1).wait_for_publish(5)

    def ack_batch(self, checkins: list[CheckIn], gate_id: str = "g1") -> None:
        """Acknowledge several check-ins in one message, as central's ingest does for one batch."""
        acks = [Ack(checkin_id=c.id, gate_id=c.gate_id, status="stored") for c in checkins]  # type: ignore[arg-type]
        payload = encode(AckBatch(gate_id=gate_id, acks=acks))
        self.client.publish(topics.gate_acks(gate_id), payload, qos=1).wait_for_publish(5)

    def raw(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def subscribed(gate: Gate) -> bool:
    """True once the broker acknowledged the gate's subscriptions (its SUBACK) on the current connection."""
    transport = gate.transport
    return isinstance(transport, MqttTransport) and transport.wait_subscribed(0)


@pytest.fixture
def central(broker: LocalBroker) -> Iterator[Central]:
    client = Central(broker)
    yield client
    client.close()


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


@pytest.fixture
def gate_factory(broker: LocalBroker, world: World,
                 make_config: Callable[..., GateConfig]) -> Iterator[Callable[..., Gate]]:
    gates: list[Gate] = []

    def make(gate_id: str = "g1", *, device: str, fail_mode: str = "secure", resend: float = 0.5) -> Gate:
        config = make_config(
            gate={"id": gate_id, "fail_mode": fail_mode,
                  "data_dir": str(make_config().gate.data_dir / gate_id)},
            mqtt={"host": broker.host, "port": broker.port, "resend_seconds": resend},
            scanner={"type": "serial", "device": device, "terminator": "cr"},
        )
        seed = GateStore(config.gate.data_dir)  # a cache synced earlier; central is unreachable now
        seed.load_snapshot(world.snapshot, NOW)
        seed.close()
        gate = Gate(config, pin_factory=MockFactory(), clock=lambda: NOW, delivery_poll_s=0.1,
                    flush_timeout=0.5)
        gates.append(gate)
        return gate

    yield make
    for gate in gates:
        gate.stop()


def test_good_code_pulses_relay_publishes_and_is_delivered_after_ack(
    gate_factory: Callable[..., Gate], central: Central, world: World, pty: tuple[int, str],
) -> None:
    master, device = pty
    gate = gate_factory(device=device)
    gate.start()
    assert gate.cache is not None and gate.cache.seq == 42, "kept the existing cache when central is down"
    assert central.wait_status("online").gate_id == "g1"
    relay = gate.turnstile.pin
    assert not relay.state

    wait_until(lambda: gate.scanner.connected.is_set())  # type: ignore[union-attr]
    os.write(master, world.codes[1].encode() + b"\r")
    assert gate.wait_for_scans(1)
    assert relay.state, "relay energised (secure wiring: HIGH = unlocked)"
    wait_until(lambda: not relay.state, timeout=2)
    assert [bool(s.state) for s in relay.states][-3:] == [False, True, False]

    checkin = central.next_checkin()
    assert (checkin.gate_id, checkin.allowed, checkin.reason, checkin.outcome) == ("g1", True, Reason.OK,
                                                                                 Outcome.ENTERED)
    assert (checkin.meeting_id, checkin.delegate_id, checkin.scanned_at) == (1, 1, NOW)
    row = gate.cache.outbox_row(str(checkin.id))
    assert row is not None and row.delivered_at is None

    # No ack yet: the gate publishes the same check-in again after resend_seconds.
    again = central.next_checkin(timeout=3)
    assert again.id == checkin.id
    wait_until(lambda: gate.cache.outbox_row(str(checkin.id)).attempts >= 2)  # type: ignore[union-attr]

    central.ack(checkin)
    wait_until(lambda: gate.cache.outbox_row(str(checkin.id)).delivered_at)  # type: ignore[union-attr]
    assert gate.cache.outbox_pending() == 0
    while not central.checkins.empty():  # at most an in-flight copy from before the ack
        assert central.checkins.get().id == checkin.id
    assert gate.delivery is not None and gate.delivery.send_due() == 0
    assert gate.cache.outbox_due(NOW + timedelta(days=365), 0.0) == [], "no re-publish after central's ack"


def test_refusals_are_published_and_bad_acks_are_ignored(
    gate_factory: Callable[..., Gate], central: Central, world: World, pty: tuple[int, str],
) -> None:
    master, device = pty
    gate = gate_factory(device=device, fail_mode="safe")
    gate.start()
    relay = gate.turnstile.pin
    assert relay.state, "safe wiring: energised (HIGH) at rest"
    wait_until(lambda: gate.scanner.connected.is_set())  # type: ignore[union-attr]

    # Garbage on the ack topic and an ack for an unknown check-in change nothing and crash nothing.
    central.raw(topics.gate_acks("g1"), b"\x00not json")
    central.raw(topics.gate_acks("g1"), b'{"v": 9}')
    central.ack(CheckIn.model_construct(id=uuid.uuid4(), gate_id="g1"))  # type: ignore[call-arg]

    os.write(master, world.codes[9001].encode() + b"\r" + b"\xff\xfe\r")
    assert gate.wait_for_scans(2)
    assert relay.state and all(s.state for s in relay.states[1:]), "never unlocked"
    first, second = central.next_checkin(), central.next_checkin()
    assert (first.allowed, first.reason, first.outcome) == (False, Reason.REVOKED, Outcome.REFUSED)
    assert (second.allowed, second.reason) == (False, Reason.MALFORMED)
    assert [r.reason for r in gate.recent] == [Reason.MALFORMED, Reason.REVOKED]
    assert gate.recent[1].name == "Nguyễn Văn 9001"

    # A batch in which one ack names another gate is refused whole; then one batch acknowledges both.
    foreign = CheckIn.model_construct(id=uuid.uuid4(), gate_id="g2")  # type: ignore[call-arg]
    central.ack_batch([first, foreign])
    central.ack(second)  # acks arrive in order: once this one is applied, the batch before it was handled
    wait_until(lambda: gate.cache.outbox_row(str(second.id)).delivered_at)  # type: ignore[union-attr]
    assert gate.cache.outbox_pending() == 1, "the batch naming another gate changed nothing"  # type: ignore[union-attr]
    central.ack_batch([first, second])
    wait_until(lambda: gate.cache.outbox_pending() == 0)  # type: ignore[union-attr]


def test_a_checkin_central_rejects_is_settled_unless_the_gate_is_unknown_to_central(
    gate_factory: Callable[..., Gate], central: Central, world: World, pty: tuple[int, str],
) -> None:
    """A nack (``rejected``: central dead-lettered a poison check-in) settles the row instead of having it
    re-sent for ever; ``unknown_gate`` is no fault of the check-in, which stays pending (registering the gate
    at central cures it)."""
    master, device = pty
    gate = gate_factory(device=device, resend=0.2)
    gate.start()
    assert gate.cache is not None
    wait_until(lambda: gate.scanner.connected.is_set())  # type: ignore[union-attr]
    os.write(master, world.codes[9001].encode() + b"\r" + b"\xff\xfe\r")
    assert gate.wait_for_scans(2)
    published: dict[uuid.UUID, CheckIn] = {}
    while len(published) < 2:  # the first may come again before the second (re-sent every 0.2 s)
        checkin = central.next_checkin()
        published[checkin.id] = checkin
    poison, unregistered = published.values()

    central.ack(poison, "rejected", Reason.MALFORMED.value)
    central.ack(unregistered, "rejected", Reason.UNKNOWN_GATE.value)
    wait_until(lambda: gate.cache.outbox_row(str(poison.id)).delivered_at)  # type: ignore[union-attr]
    assert gate.cache.outbox_pending() == 1
    due = gate.cache.outbox_due(datetime.now(UTC) + timedelta(days=365), 0.0)  # delivery runs on the real clock
    assert [row.checkin_id for row in due] == [str(unregistered.id)], "only the unknown gate's row is re-sent"
    sent = gate.cache.outbox_row(str(unregistered.id)).attempts  # type: ignore[union-attr]
    wait_until(lambda: gate.cache.outbox_row(str(unregistered.id)).attempts > sent)  # type: ignore[union-attr]


def test_stop_releases_relay_publishes_offline_and_two_gates_share_a_process(
    gate_factory: Callable[..., Gate], central: Central, world: World,
) -> None:
    pty_a, pty_b = os.openpty(), os.openpty()
    gate_a = gate_factory("ga", device=os.ttyname(pty_a[1]), fail_mode="safe")
    gate_b = gate_factory("gb", device=os.ttyname(pty_b[1]), fail_mode="secure")
    try:
        gate_a.start()
        gate_b.start()
        wait_until(lambda: subscribed(gate_a) and subscribed(gate_b))
        decision, checkin = gate_b.handle_scan(ScanEvent(world.codes[2], Reason.OK, "test", time.monotonic()))
        assert decision.allowed and checkin is not None
        # b unlocked (secure: HIGH), a at rest (safe: HIGH)
        assert gate_b.turnstile.pin.state and gate_a.turnstile.pin.state

        gate_a.stop()
        assert not gate_a.turnstile.pin.state, "safe gate de-energised on stop (released)"
        status = central.wait_status("offline")
        assert status.gate_id == "ga"
        assert gate_b.transport.is_connected  # type: ignore[union-attr]

        central.ack(central.next_checkin())
        assert wait_until(lambda: gate_b.cache.outbox_pending() == 0)  # type: ignore[union-attr]
        gate_b.stop()
        assert not gate_b.turnstile.pin.state, "secure gate de-energised on stop (locked)"
    finally:
        for fd in (*pty_a, *pty_b):
            os.close(fd)


def test_check_in_is_committed_before_the_relay_opens(
    gate_factory: Callable[..., Gate], central: Central, world: World, pty: tuple[int, str],
) -> None:
    _, device = pty
    gate = gate_factory(device=device)
    gate.start()
    seen: list[int] = []
    original_unlock = gate.turnstile.unlock

    def unlock_spy(seconds: float | None = None) -> None:
        # A second connection sees the committed row at the moment the relay is asked to open.
        probe = GateStore(gate.config.gate.data_dir)
        seen.append(probe.outbox_pending())
        probe.close()
        original_unlock(seconds)

    gate.turnstile.unlock = unlock_spy  # type: ignore[method-assign]
    decision, _ = gate.handle_scan(ScanEvent(world.codes[3], Reason.OK, "test", time.monotonic()))
    assert decision.allowed and seen == [1]
