"""The ingest worker against a real Mosquitto: store once, ack twice, survive bad payloads, track gates."""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from central.core.db import database
from central.gates.models import CheckIn as CheckInRow
from central.gates.models import Gate
from central.messaging.ingest import IngestWorker, ack_messages
from devtools.broker import LocalBroker
from protocols import topics
from protocols.payloads import (
    MAX_ACKS_PER_BATCH,
    MAX_PAYLOAD_BYTES,
    Ack,
    AckBatch,
    CheckIn,
    Direction,
    GateStatus,
    Heartbeat,
    Outcome,
    decode,
    decode_acks,
    encode,
)
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until

from .conftest import START, Api, Clock

TIMEOUT = scaled(30.0)  # a ceiling only: a loaded machine (postgres, 2 cores) needed more than 10 s


@pytest.fixture
def worker(api: Api, broker: LocalBroker, clock: Clock) -> Iterator[IngestWorker]:
    """A started ingest worker (gate g1 registered) connected to the test broker."""
    api.gate("g1")
    ingest = IngestWorker(broker.host, broker.port, client_id=f"ingest-{uuid.uuid4().hex[:8]}", clock=clock)
    ingest.start()
    assert ingest.connected.wait(TIMEOUT)
    yield ingest
    ingest.stop()


@pytest.fixture
def gate_client(broker: LocalBroker) -> Iterator[tuple[mqtt.Client, queue.Queue[Ack]]]:
    """An MQTT client playing gate g1, subscribed to its ack topic; acks arrive in the queue."""
    acks: queue.Queue[Ack] = queue.Queue()
    subscribed = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gate-g1-test")
    client.on_message = lambda _c, _u, msg: [acks.put(ack) for ack in decode_acks(msg.payload)]
    client.on_subscribe = lambda *_args: subscribed.put(True)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.subscribe(topics.gate_acks("g1"), qos=1)
    subscribed.get(timeout=TIMEOUT)
    yield client, acks
    client.disconnect()
    client.loop_stop()


def _checkin(**extra: Any) -> CheckIn:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "gate_id": "g1",
        "site_id": "hq",
        "direction": Direction.IN,
        "scanned_at": START,
        "allowed": True,
        "reason": Reason.OK,
        "outcome": Outcome.ENTERED,
        "credential": "signed:1:1:1",
    }
    values.update(extra)
    return CheckIn(**values)


def _count(checkin_id: uuid.UUID) -> int:
    with database.connection_context():
        return CheckInRow.select().where(CheckInRow.checkin_id == checkin_id).count()


def test_checkin_sent_twice_is_stored_once_and_acked_twice(worker: IngestWorker, gate_client: Any) -> None:
    client, acks = gate_client
    payload = _checkin()
    client.publish(topics.gate_checkins("g1"), encode(payload), qos=1).wait_for_publish(TIMEOUT)
    first = acks.get(timeout=TIMEOUT)
    client.publish(topics.gate_checkins("g1"), encode(payload), qos=1).wait_for_publish(TIMEOUT)
    second = acks.get(timeout=TIMEOUT)
    assert (first.checkin_id, first.status) == (payload.id, "stored")
    assert (second.checkin_id, second.status) == (payload.id, "duplicate")
    assert _count(payload.id) == 1


def test_malformed_payload_is_logged_and_worker_keeps_going(
    worker: IngestWorker, gate_client: Any, broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    client, acks = gate_client
    caplog.set_level(logging.WARNING, logger="central.messaging.ingest")
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
         "-t", "vaora/v1/gates/g1/checkins", "-m", "{not json"],
        check=True, timeout=TIMEOUT,
    )
    deadline = time.monotonic() + TIMEOUT
    while "bad payload" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "topic=vaora/v1/gates/g1/checkins reason=malformed" in caplog.text

    payload = _checkin()
    client.publish(topics.gate_checkins("g1"), encode(payload), qos=1)
    ack = acks.get(timeout=TIMEOUT)
    assert (ack.checkin_id, ack.status) == (payload.id, "stored")
    assert _count(payload.id) == 1


def test_checkin_for_another_gates_topic_is_rejected(worker: IngestWorker, gate_client: Any) -> None:
    client, acks = gate_client
    payload = _checkin(gate_id="g2")
    client.publish(topics.gate_checkins("g1"), encode(payload), qos=1)
    ack = acks.get(timeout=TIMEOUT)
    assert (ack.status, ack.reason) == ("rejected", "gate_mismatch")
    assert _count(payload.id) == 0


def test_heartbeat_and_status_update_the_gate(worker: IngestWorker, gate_client: Any, clock: Clock) -> None:
    client, _ = gate_client
    beat = Heartbeat(gate_id="g1", sent_at=clock.now, cache_seq=7, outbox_pending=2, software_version="0.1.0")
    client.publish(topics.gate_heartbeat("g1"), encode(beat), qos=1)
    gone = GateStatus(gate_id="g1", state="offline", since=clock.now + timedelta(seconds=1))
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with database.connection_context():
            gate = Gate.get(Gate.gate_id == "g1")
        if gate.cache_seq == 7:
            break
        time.sleep(0.05)
    assert (gate.cache_seq, gate.software_version, gate.state) == (7, "0.1.0", "online")
    assert gate.last_seen_at == clock.now
    client.publish(topics.gate_status("g1"), encode(gone), qos=1, retain=True)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with database.connection_context():
            gate = Gate.get(Gate.gate_id == "g1")
        if gate.state == "offline":
            break
        time.sleep(0.05)
    assert gate.state == "offline"


def test_a_batch_answers_each_checkin_in_order(api: Api, clock: Clock) -> None:
    """One transaction for many check-ins: stored, duplicates (earlier and within the batch), rejections."""
    from central.gates.checkins import store_checkins

    api.gate("g1")
    first, second, third = _checkin(), _checkin(), _checkin()
    with database.connection_context():
        store_checkins([(first, "g1")], START)
        acks = store_checkins(
            [
                (second, "g1"),
                (first, "g1"),  # stored in an earlier batch
                (second, "g1"),  # repeated within this batch
                (third, "g2"),  # published on another gate's topic
                (_checkin(gate_id="ghost"), "ghost"),  # not a registered gate
            ],
            START,
        )
    assert [ack.status for ack in acks] == ["stored", "duplicate", "duplicate", "rejected", "rejected"]
    assert [ack.reason for ack in acks[3:]] == [Reason.GATE_MISMATCH.value, Reason.UNKNOWN_GATE.value]
    assert [ack.checkin_id for ack in acks[:3]] == [second.id, first.id, second.id]
    assert (_count(first.id), _count(second.id), _count(third.id)) == (1, 1, 0)


def test_a_batch_beyond_one_lookup_chunk_finds_every_earlier_checkin(api: Api) -> None:
    """Duplicates are looked up 400 ids to a statement (its text built once per size and database kind): a batch
    of 900 holding 450 check-ins stored before, spread over the chunks, answers each of them ``duplicate``."""
    from central.gates.checkins import store_checkins

    api.gate("g1")
    earlier = [_checkin() for _ in range(450)]
    fresh = [_checkin() for _ in range(450)]
    mixed = [checkin for pair in zip(earlier, fresh, strict=True) for checkin in pair]
    with database.connection_context():
        assert {ack.status for ack in store_checkins([(c, "g1") for c in earlier], START)} == {"stored"}
        acks = store_checkins([(c, "g1") for c in mixed], START)
        assert [ack.status for ack in acks] == ["duplicate", "stored"] * 450
        assert [ack.checkin_id for ack in acks] == [c.id for c in mixed]
        assert CheckInRow.select().count() == 900
        again = store_checkins([(c, "g1") for c in fresh[:3]], START)
    assert [ack.status for ack in again] == ["duplicate"] * 3


def test_a_checkin_naming_unknown_ids_beyond_32_bits_is_stored_without_them(api: Api) -> None:
    """A payload may name any 64-bit meeting or delegate id: one that no row has (here beyond a 32-bit column) is
    stored as unknown beside a check-in naming a real meeting, in the same batch, on SQLite and PostgreSQL."""
    from central.gates.checkins import store_checkins

    api.gate("g1")
    meeting = api.meeting()
    far = _checkin(meeting_id=2**40, delegate_id=2**62)
    near = _checkin(meeting_id=meeting["id"])
    with database.connection_context():
        acks = store_checkins([(far, "g1"), (near, "g1")], START)
        rows = {row.checkin_id: row for row in CheckInRow.select()}
    assert [ack.status for ack in acks] == ["stored", "stored"]
    assert (rows[far.id].meeting_id, rows[far.id].delegate_id) == (None, None)
    assert rows[near.id].meeting_id == meeting["id"]


def test_a_burst_is_stored_once_each_and_acked(worker: IngestWorker, gate_client: Any) -> None:
    client, acks = gate_client
    messages: list[bytes] = []
    client.on_message = lambda _c, _u, msg: [messages.append(msg.payload)] + [
        acks.put(ack) for ack in decode_acks(msg.payload)]
    burst = [_checkin() for _ in range(300)]
    for checkin in burst:
        client.publish(topics.gate_checkins("g1"), encode(checkin), qos=1)
    received = [acks.get(timeout=TIMEOUT) for _ in burst]
    assert len(messages) < len(burst), "acks of one ingest batch travel together (AckBatch)"
    assert sorted(str(a.checkin_id) for a in received) == sorted(str(c.id) for c in burst)
    assert {a.status for a in received} == {"stored"}
    with database.connection_context():
        assert CheckInRow.select().count() == 300


def test_batching_lingers_briefly_for_more_messages() -> None:
    """A message arriving within ``linger_s`` of the first joins its batch (one transaction); later ones do not."""
    worker = IngestWorker("127.0.0.1", 1, linger_s=scaled(30.0))  # never started: only its batching is used
    first, second, late = object(), object(), object()
    worker._inbox.put(first)  # type: ignore[arg-type]

    def arrive_while_lingering() -> None:  # once the batch has its first message, a second one comes, then stop
        wait_until(lambda: worker._inbox.empty())
        worker._inbox.put(second)  # type: ignore[arg-type]
        worker._inbox.put(None)

    putter = threading.Thread(target=arrive_while_lingering)
    putter.start()
    batch, stop = worker._next_batch()
    putter.join()
    assert batch == [first, second] and stop  # the second joined the first's batch instead of starting its own
    eager = IngestWorker("127.0.0.1", 1, linger_s=0.0)
    eager._inbox.put(first)  # type: ignore[arg-type]
    threading.Timer(0.1, eager._inbox.put, args=(late,)).start()
    assert eager._next_batch() == ([first], False)


def test_ack_messages_one_ack_alone_more_in_batches_under_the_payload_limit() -> None:
    acks = [Ack(checkin_id=uuid.uuid4(), gate_id="g1", status="stored") for _ in range(MAX_ACKS_PER_BATCH + 1)]
    (single,) = ack_messages("g1", acks[:1])
    assert decode(Ack, single) == acks[0]
    batches = ack_messages("g1", acks)
    assert [len(decode(AckBatch, raw).acks) for raw in batches] == [MAX_ACKS_PER_BATCH, 1]
    assert all(len(raw) <= MAX_PAYLOAD_BYTES for raw in batches)
    assert [ack for raw in batches for ack in decode_acks(raw)] == acks


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("vaora/v1/gates/g1/acks", "channel acks is not for central"),
        ("vaora/v1/gates/g1/commands", "channel commands is not for central"),
        ("vaora/v1/gates/g1/nonsense", "not a gate topic"),
        ("vaora/v1/gates/G 1/checkins", "not a gate topic"),
        ("vaora/v2/gates/g1/checkins", "not a gate topic"),
        ("vaora/v1/gates/g1/checkins/extra", "not a gate topic"),
    ],
)
def test_messages_on_other_topics_are_dropped_with_a_reason(
    topic: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Ingest dispatches on ``parse_gate_topic(...).channel``; anything else is logged and dropped."""
    published: list[tuple[str, bytes]] = []

    class Recorder:
        def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
            published.append((topic, payload))

    worker = IngestWorker("127.0.0.1", 1)  # never started
    caplog.set_level(logging.WARNING, logger="central.messaging.ingest")
    worker.handle(Recorder(), topic, encode(_checkin()))  # type: ignore[arg-type]
    assert f"ingest dropped message on unexpected topic={topic} reason={reason}" in caplog.text
    assert published == []


def _hold_write_lock(database_url: str) -> Any:
    """Another connection that holds the check-in table's write lock until closed (the database stalls)."""
    if database_url.startswith("sqlite"):
        import sqlite3

        holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
        holder.execute("BEGIN EXCLUSIVE")
        return holder
    import psycopg

    holder = psycopg.connect(database_url)  # a transaction is open until rollback
    holder.execute("LOCK TABLE check_in IN ACCESS EXCLUSIVE MODE")
    return holder


def test_a_writer_stuck_on_the_database_is_unhealthy_until_it_gets_through(
    worker: IngestWorker, gate_client: Any, database_url: str
) -> None:
    """``writer_healthy`` gates systemd's watchdog pings (``vaora-central ingest``): a batch held longer than
    ``stuck_after`` makes it false, so systemd restarts a stalled ingest. Judged with an injected clock."""
    client, acks = gate_client
    assert worker.writer_healthy()
    holder = _hold_write_lock(database_url)
    try:
        payload = _checkin()
        client.publish(topics.gate_checkins("g1"), encode(payload), qos=1).wait_for_publish(TIMEOUT)
        wait_until(lambda: not worker.writer_healthy(now=time.monotonic() + 61), timeout=TIMEOUT,
                   message="the writer never took the check-in in hand")
        assert worker.writer_healthy(), "a batch in hand for less than stuck_after is not stuck yet"
    finally:
        holder.rollback()
        holder.close()
    assert acks.get(timeout=TIMEOUT).checkin_id == payload.id
    wait_until(lambda: worker.writer_healthy(now=time.monotonic() + 61), timeout=TIMEOUT,
               message="the writer stayed stuck after the database answered again")
    assert _count(payload.id) == 1


POISON_MEETING_ID = 2**63  # one more than a 64-bit column holds: the lookup itself fails on SQLite


class _BatchRecorder(IngestWorker):
    """An ingest worker that notes which check-in ids each batch held (to show the poison shared a batch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[set[uuid.UUID]] = []
        self.batch_topics: list[set[str]] = []

    def handle_batch(self, client: mqtt.Client, messages: list[tuple[str, bytes]]) -> None:
        self.batches.append({decode(CheckIn, raw).id for topic, raw in messages if topic.endswith("/checkins")})
        self.batch_topics.append({topic for topic, _ in messages})
        super().handle_batch(client, messages)


@pytest.fixture
def lingering_worker(api: Api, broker: LocalBroker, clock: Clock) -> Iterator[_BatchRecorder]:
    """An ingest worker (gate g1 registered) that waits a little for more messages, so that check-ins published
    together are stored in one batch."""
    api.gate("g1")
    ingest = _BatchRecorder(broker.host, broker.port, client_id=f"ingest-{uuid.uuid4().hex[:8]}", clock=clock,
                            linger_s=0.2)
    ingest.start()
    assert ingest.connected.wait(TIMEOUT)
    yield ingest
    ingest.stop()


def _publish_with_poison(client: mqtt.Client, acks: queue.Queue[Ack], worker: _BatchRecorder,
                         poison: CheckIn) -> tuple[list[CheckIn], dict[uuid.UUID, Ack], float]:
    """Publish 5 valid check-ins around ``poison``; return them, every ack by id, and the seconds until the
    last of the 6 acks arrived (time.monotonic)."""
    valid = [_checkin() for _ in range(5)]
    started = time.monotonic()
    for payload in [*valid[:2], poison, *valid[2:]]:
        client.publish(topics.gate_checkins("g1"), encode(payload), qos=1)
    received: dict[uuid.UUID, Ack] = {}
    while len(received) < 6:
        ack = acks.get(timeout=TIMEOUT)
        received[ack.checkin_id] = ack
    elapsed = time.monotonic() - started
    print(f"6 acks (5 stored, 1 rejected) {elapsed * 1000:.0f} ms after publishing")
    assert any(poison.id in batch and len(batch) > 1 for batch in worker.batches), (
        f"the poison did not share a batch with valid check-ins: {worker.batches}")
    return valid, received, elapsed


def _acked_at_once(caplog: pytest.LogCaptureFixture) -> bool:
    """True when the batch was answered on its first pass: the worker never retried it with back-off (0.5 s, then
    doubling: the 29 s the issue saw), and the raw client here never re-sends, so every ack came from the first
    delivery. The milliseconds are printed (BENCHMARKS.md's figures come from a quiet machine); a wall-clock
    ceiling here would fail on a loaded one."""
    return not [record for record in caplog.records if "retrying" in record.getMessage()]


def test_a_poison_checkin_is_dead_lettered_alone_and_the_rest_of_its_batch_acked_at_once(
    lingering_worker: _BatchRecorder, gate_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14 point 7: a meeting id no database column holds (2^63) is refused alone (``rejected``,
    ``malformed``, logged with its topic) and the 5 valid check-ins of its batch are stored and acknowledged on the
    batch's first pass, with no back-off retry (it used to be the gate's 30 s re-send, or never on PostgreSQL)."""
    client, acks = gate_client
    caplog.set_level(logging.WARNING, logger="central")
    poison = _checkin(meeting_id=POISON_MEETING_ID)
    valid, received, elapsed = _publish_with_poison(client, acks, lingering_worker, poison)
    assert [received[payload.id].status for payload in valid] == ["stored"] * 5
    assert (received[poison.id].status, received[poison.id].reason) == ("rejected", Reason.MALFORMED.value)
    assert _acked_at_once(caplog), f"the batch was retried with back-off ({elapsed:.2f} s)"
    assert [_count(payload.id) for payload in valid] == [1] * 5
    assert _count(poison.id) == 0
    assert "ingest dead letter topic=vaora/v1/gates/g1/checkins reason=malformed" in caplog.text
    assert f"checkin {poison.id} gate=g1 rejected reason=malformed detail=meeting_id out of the 64-bit range" \
        in caplog.text


def _refuse_credential_in_the_database(database_url: str, credential: str) -> None:
    """A trigger that makes the database itself refuse a check-in with ``credential`` (a poison that passes
    every check before the write)."""
    with database.connection_context():
        if database_url.startswith("sqlite"):
            database.execute_sql(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON check_in "
                f"WHEN NEW.credential = '{credential}' BEGIN SELECT RAISE(ABORT, 'poison refused'); END")
        else:
            database.execute_sql(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.credential = '{credential}' THEN "
                "RAISE EXCEPTION 'poison refused' USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$")
            database.execute_sql("CREATE TRIGGER refuse_poison BEFORE INSERT ON check_in "
                                 "FOR EACH ROW EXECUTE FUNCTION refuse_poison()")


def test_a_checkin_the_database_refuses_is_rejected_alone_after_storing_one_by_one(
    lingering_worker: _BatchRecorder, gate_client: Any, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A poison that passes validation and fails only in the database (here a trigger refuses its row): the
    batch's write fails, the check-ins are written again one by one, and only the refused one is rejected."""
    client, acks = gate_client
    caplog.set_level(logging.WARNING, logger="central")
    _refuse_credential_in_the_database(database_url, "poison")
    poison = _checkin(credential="poison")
    valid, received, elapsed = _publish_with_poison(client, acks, lingering_worker, poison)
    assert [received[payload.id].status for payload in valid] == ["stored"] * 5
    assert (received[poison.id].status, received[poison.id].reason) == ("rejected", Reason.INTERNAL_ERROR.value)
    assert _acked_at_once(caplog), f"the batch was retried with back-off ({elapsed:.2f} s)"
    assert [_count(payload.id) for payload in valid] == [1] * 5
    assert _count(poison.id) == 0
    assert "storing them one by one" in caplog.text
    assert "ingest dead letter topic=vaora/v1/gates/g1/checkins reason=internal_error" in caplog.text


def test_a_heartbeat_the_database_refuses_costs_only_itself(
    lingering_worker: _BatchRecorder, gate_client: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A heartbeat whose cache sequence no column holds (2^63) is dead-lettered; the check-in of its batch is
    stored and acknowledged, and the gate's next heartbeat is recorded."""
    client, acks = gate_client
    caplog.set_level(logging.WARNING, logger="central")
    poison = Heartbeat(gate_id="g1", sent_at=clock.now, cache_seq=2**63, outbox_pending=0, software_version="0.1.0")
    payload = _checkin()
    client.publish(topics.gate_heartbeat("g1"), encode(poison), qos=1)
    client.publish(topics.gate_checkins("g1"), encode(payload), qos=1)
    ack = acks.get(timeout=TIMEOUT)
    assert (ack.checkin_id, ack.status) == (payload.id, "stored")
    both = {topics.gate_heartbeat("g1"), topics.gate_checkins("g1")}
    assert both in lingering_worker.batch_topics, "the heartbeat and the check-in were not in one batch"
    wait_until(lambda: "ingest dead letter topic=vaora/v1/gates/g1/heartbeat reason=malformed" in caplog.text,
               timeout=TIMEOUT, message=lambda: caplog.text[-2000:])
    fine = Heartbeat(gate_id="g1", sent_at=clock.now, cache_seq=7, outbox_pending=0, software_version="0.1.0")
    client.publish(topics.gate_heartbeat("g1"), encode(fine), qos=1)

    def cache_seq() -> int:
        with database.connection_context():
            return Gate.get(Gate.gate_id == "g1").cache_seq

    wait_until(lambda: cache_seq() == 7, timeout=TIMEOUT)


def test_a_batchs_heartbeats_are_stored_together_and_a_refused_one_costs_only_itself(
    worker: IngestWorker, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Heartbeats and statuses of one batch share a transaction, each in its own savepoint: the one the database
    refuses (a cache sequence no column holds) is dead-lettered, the others of the batch are all recorded."""
    caplog.set_level(logging.WARNING, logger="central")
    first = Heartbeat(gate_id="g1", sent_at=clock.now, cache_seq=5, outbox_pending=0, software_version="0.1.0")
    poison = Heartbeat(gate_id="g1", sent_at=clock.now, cache_seq=2**63, outbox_pending=0, software_version="0.1.0")
    last = Heartbeat(gate_id="g1", sent_at=clock.now, cache_seq=6, outbox_pending=3, software_version="0.2.0")
    gone = GateStatus(gate_id="g1", state="offline", since=clock.now + timedelta(seconds=1))
    batch = [(topics.gate_heartbeat("g1"), encode(first)), (topics.gate_heartbeat("g1"), encode(poison)),
             (topics.gate_heartbeat("g1"), encode(last)), (topics.gate_status("g1"), encode(gone))]
    worker.handle_batch(worker.client, batch)
    with database.connection_context():
        gate = Gate.get(Gate.gate_id == "g1")
    assert (gate.cache_seq, gate.outbox_pending, gate.software_version, gate.state) == (6, 3, "0.2.0", "offline")
    assert caplog.text.count("ingest dead letter topic=vaora/v1/gates/g1/heartbeat reason=malformed") == 1
