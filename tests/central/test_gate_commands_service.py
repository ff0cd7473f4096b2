"""Central's side of remote gate commands: issue (validated, stored, audited, published), answers, timeouts.

The publisher is a recorder here; ``test_real_publisher_reaches_a_gate_subscriber`` uses a real Mosquitto.
The whole loop with a running gate is in tests/e2e/test_commands.py.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from flask import Flask

from central.core.db import database
from central.core.errors import InvalidInputError, NotFoundError, ServiceError
from central.core.models import AuditEntry
from central.gates import commands as gate_commands
from central.gates.checkins import record_status, store_checkin
from central.gates.models import CheckIn as CheckInRow
from central.gates.models import Gate, GateCommand
from central.messaging.ingest import SUBSCRIPTIONS, IngestWorker
from central.messaging.publish import MqttPublisher, PublishError, get_publisher
from devtools.broker import LocalBroker
from protocols import topics
from protocols.payloads import CheckIn, Command, CommandResult, Direction, GateStatus, Outcome, decode, encode
from protocols.reasons import Reason
from tests.conftest import scaled

from .conftest import Api


class Recorder:
    """A CommandPublisher that keeps what it was given (or fails like a broker that is away)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, int]] = []
        self.fail = fail

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        if self.fail:
            raise PublishError("not connected")
        self.sent.append((topic, payload, qos))


@pytest.fixture
def gates(api: Api, db: None) -> list[str]:
    api.gate("lobby-1")
    api.gate("lobby-2")
    return ["lobby-1", "lobby-2"]


def result(row: GateCommand, ok: bool = True, gate_id: str = "lobby-1", **extra: Any) -> CommandResult:
    return CommandResult(command_id=row.command_id, gate_id=gate_id, ok=ok, **extra)


def test_issue_stores_audits_and_publishes_at_qos_1(gates: list[str]) -> None:
    recorder = Recorder()
    row = gate_commands.issue("lobby-1", "lockdown", "truong-ca", note="diễn tập", publisher=recorder)
    assert row.status == "sent" and row.issued_by == "truong-ca" and row.note == "diễn tập"
    ((topic, payload, qos),) = recorder.sent
    assert topic == topics.gate_commands("lobby-1") and qos == 1
    command = decode(Command, payload)
    assert (command.id, command.action, command.issued_by, command.note) == (
        row.command_id, "lockdown", "truong-ca", "diễn tập")
    assert abs((command.issued_at - datetime.now(UTC)).total_seconds()) < 5, "real time: the gate checks its age"
    (entry,) = AuditEntry.select().where(AuditEntry.action == "gate.command.lockdown")
    assert entry.actor == "truong-ca" and entry.target == "gate:lobby-1"
    assert json.loads(entry.details)["command_id"] == str(row.command_id)


def test_issue_refuses_unknown_gates_actions_and_mismatched_people(gates: list[str], api: Api) -> None:
    recorder = Recorder()
    with pytest.raises(NotFoundError) as unknown_gate:
        gate_commands.issue("nowhere", "open", "an", publisher=recorder)
    assert unknown_gate.value.reason is Reason.UNKNOWN_GATE
    with pytest.raises(ServiceError) as unknown_action:
        gate_commands.issue("lobby-1", "explode", "an", publisher=recorder)
    assert unknown_action.value.reason is Reason.UNKNOWN_ACTION
    with pytest.raises(InvalidInputError) as bad_note:
        gate_commands.issue("lobby-1", "open", "an", note="x" * 201, publisher=recorder)
    assert "note" in bad_note.value.fields
    with pytest.raises(InvalidInputError) as no_delegate:
        gate_commands.issue("lobby-1", "open", "an", delegate_id=999, publisher=recorder)
    assert "delegate_id" in no_delegate.value.fields
    with pytest.raises(InvalidInputError):
        gate_commands.issue("lobby-1", "lockdown", "an", meeting_id=1, publisher=recorder)
    invitation = api.invitation()
    delegate = api.register(invitation).get_json()
    other_meeting = api.meeting()["id"]
    with pytest.raises(InvalidInputError) as mismatch:
        gate_commands.issue("lobby-1", "open", "an", meeting_id=other_meeting, delegate_id=delegate["id"],
                            publisher=recorder)
    assert "delegate_id" in mismatch.value.fields
    assert recorder.sent == [] and GateCommand.select().count() == 0
    row = gate_commands.issue("lobby-1", "open", "an", delegate_id=delegate["id"], publisher=recorder)
    assert row.meeting_id == invitation["meeting_id"], "the delegate's meeting is filled in"
    assert decode(Command, recorder.sent[0][1]).delegate_id == delegate["id"]


def test_a_command_that_cannot_be_published_is_kept_as_failed(gates: list[str]) -> None:
    with pytest.raises(ServiceError) as error:
        gate_commands.issue("lobby-1", "open", "an", publisher=Recorder(fail=True))
    assert error.value.reason is Reason.NOT_CONNECTED
    (row,) = gate_commands.recent("lobby-1")
    assert (row.status, row.reason) == ("failed", Reason.NOT_CONNECTED.value)


def test_answers_update_the_row_and_the_gate_mode_and_wrong_answers_are_dropped(gates: list[str]) -> None:
    row = gate_commands.issue("lobby-1", "release", "an", publisher=Recorder())
    assert gate_commands.record_result(result(row, gate_id="lobby-2")) is None, "another gate cannot answer"
    unknown = CommandResult(command_id=uuid.uuid4(), gate_id="lobby-1", ok=True)
    assert gate_commands.record_result(unknown) is None
    assert gate_commands.get(row.command_id).status == "sent"
    answered = gate_commands.record_result(result(row, mode="release"))
    assert answered is not None and answered.status == "ok" and answered.answered_at is not None
    assert Gate.get(Gate.gate_id == "lobby-1").mode == "release"
    again = gate_commands.record_result(result(row, ok=False, reason="internal_error"))
    assert again is not None and again.status == "ok", "a repeated answer changes nothing"
    refused = gate_commands.issue("lobby-1", "open", "an", publisher=Recorder())
    stored = gate_commands.record_result(result(refused, ok=False, reason=Reason.LOCKED_DOWN.value))
    assert stored is not None and (stored.status, stored.reason) == ("failed", "locked_down")
    page = gate_commands.command_to_dict(stored)
    assert page["reason_vi"] == "Cổng đang bị khóa, không cho vào" and page["status"] == "failed"


def test_wait_times_out_and_a_late_answer_still_lands(gates: list[str]) -> None:
    row = gate_commands.issue("lobby-1", "open", "an", publisher=Recorder())
    started = time.monotonic()
    waited = gate_commands.wait(row.command_id, timeout=0.3)
    assert time.monotonic() - started >= 0.3  # a lower bound only: a slow machine just answers later
    assert (waited.status, waited.reason) == ("timeout", Reason.COMMAND_TIMEOUT.value)
    late = gate_commands.record_result(result(row))
    assert late is not None and late.status == "ok"


def test_wait_returns_as_soon_as_the_gate_answers(gates: list[str], app: Flask) -> None:
    row = gate_commands.issue("lobby-1", "resync", "an", publisher=Recorder())

    def answer() -> None:
        time.sleep(0.2)
        with database.connection_context():
            gate_commands.record_result(result(row))

    thread = threading.Thread(target=answer)
    thread.start()
    timeout = scaled(30.0)
    started = time.monotonic()
    waited = gate_commands.wait(str(row.command_id), timeout=timeout)
    thread.join()
    # returned on the answer, long before its deadline (a slow machine only narrows the margin of 30 s)
    assert waited.status == "ok" and time.monotonic() - started < timeout / 2
    assert [r.command_id for r in gate_commands.recent()] == [row.command_id]
    assert gate_commands.recent("lobby-2") == []


def test_ingest_hands_results_to_the_service_and_checks_the_topic(gates: list[str]) -> None:
    row = gate_commands.issue("lobby-1", "resume", "an", publisher=Recorder())
    worker = IngestWorker("127.0.0.1", 1)
    worker.handle(worker.client, topics.gate_command_results("lobby-2"), encode(result(row)))
    assert gate_commands.get(row.command_id).status == "sent", "answer on another gate's topic dropped"
    worker.handle(worker.client, topics.gate_command_results("lobby-1"), b"{bad json")
    worker.handle(worker.client, topics.gate_command_results("lobby-1"), encode(result(row, mode="normal")))
    assert gate_commands.get(row.command_id).status == "ok"
    assert (topics.ALL_GATE_COMMAND_RESULTS, 1) in SUBSCRIPTIONS


def test_a_remote_open_check_in_keeps_its_operator_and_command(gates: list[str]) -> None:
    row = gate_commands.issue("lobby-1", "open", "bao-ve-an", publisher=Recorder())
    now = datetime.now(UTC)
    checkin = CheckIn(id=uuid.uuid4(), gate_id="lobby-1", site_id="hq", direction=Direction.IN, scanned_at=now,
                      allowed=True, reason=Reason.MANUAL_OPEN, outcome=Outcome.ENTERED, manual=True,
                      completed_at=now, operator="bao-ve-an", command_id=row.command_id)
    assert store_checkin(checkin, "lobby-1", now).status == "stored"
    stored = CheckInRow.get(CheckInRow.checkin_id == checkin.id)
    assert (stored.operator, stored.command_id, stored.manual) == ("bao-ve-an", row.command_id, True)


def test_an_offline_status_keeps_the_mode_the_gate_last_reported(gates: list[str]) -> None:
    now = datetime.now(UTC)
    record_status(GateStatus(gate_id="lobby-1", state="online", mode="lockdown", fail_mode="safe"), "lobby-1", now)
    record_status(GateStatus(gate_id="lobby-1", state="offline"), "lobby-1", now)
    gate = Gate.get(Gate.gate_id == "lobby-1")
    assert (gate.state, gate.mode, gate.fail_mode) == ("offline", "lockdown", "safe")


def test_get_publisher_prefers_an_injected_one(app: Flask) -> None:
    recorder = Recorder()
    app.extensions["vaora_publisher"] = recorder
    with app.app_context():
        assert get_publisher() is recorder
    assert get_publisher(app) is recorder


def test_real_publisher_reaches_a_gate_subscriber(broker: LocalBroker) -> None:
    received: list[bytes] = []
    got = threading.Event()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gate-spy")
    subscriber.on_message = lambda _c, _u, message: (received.append(message.payload), got.set())
    subscriber.connect(broker.host, broker.port)
    subscriber.subscribe(topics.gate_commands("lobby-1"), qos=1)
    subscriber.loop_start()
    publisher = MqttPublisher(broker.host, broker.port)
    try:
        time.sleep(0.3)
        publisher.publish(topics.gate_commands("lobby-1"), b"hello", 1)
        assert got.wait(5) and received == [b"hello"]
    finally:
        publisher.stop()
        subscriber.loop_stop()
        subscriber.disconnect()
    unreachable = MqttPublisher("127.0.0.1", 1, connect_wait_s=0.3)
    try:
        with pytest.raises(PublishError):
            unreachable.publish(topics.gate_commands("lobby-1"), b"x", 1)
    finally:
        unreachable.stop()
