"""The gate fleet page against a real Mosquitto and central's real ingest worker: every gate with its site,
venue, direction, fail mode, version, heartbeat and mode; commands need confirmation where they change what the
turnstile does for everyone, reach the gate over MQTT, and show the gate's answer, or a timeout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.gates import commands as gate_commands
from central.meetings import venues
from central.messaging.ingest import IngestWorker
from central.messaging.publish import close_publishers
from devtools.broker import LocalBroker
from protocols import payloads, topics

from .conftest import Api, Clock, gates_at_two_sites
from .staff import csrf, login, make_users


@pytest.fixture
def central_config(central_config: dict[str, Any], broker: LocalBroker) -> dict[str, Any]:
    """The test app, talking to the test's Mosquitto."""
    return {**central_config, "VAORA_MQTT_HOST": broker.host, "VAORA_MQTT_PORT": broker.port}


@pytest.fixture
def ingest(app: Flask, broker: LocalBroker) -> Iterator[IngestWorker]:
    """Central's ingest worker (it stores the gates' answers to commands)."""
    worker = IngestWorker(broker.host, broker.port, client_id="fleet-test-ingest")
    worker.start()
    assert worker.connected.wait(10)
    yield worker
    worker.stop()
    close_publishers()


class AnsweringGate:
    """Stands in for gate g1's command handler on the broker: answers every command ok with the mode it set."""

    def __init__(self, broker: LocalBroker, gate_id: str) -> None:
        self.gate_id = gate_id
        self.received: list[payloads.Command] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{gate_id}")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topics.gate_commands(gate_id), qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        command = payloads.decode(payloads.Command, message.payload)
        self.received.append(command)
        mode = {"lockdown": "lockdown", "release": "release", "resume": "normal"}.get(command.action)
        result = payloads.CommandResult(command_id=command.id, gate_id=self.gate_id, ok=True, mode=mode)
        client.publish(topics.gate_command_results(self.gate_id), payloads.encode(result), qos=1)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def fleet(app: Flask, api: Api, clock: Clock, broker: LocalBroker, ingest: IngestWorker) -> Iterator[AnsweringGate]:
    make_users(clock.now)
    with database.connection_context():
        venues.create_venue({"name": "Hội trường tầng 2", "kind": "main", "site_id": "hq"}, actor="t", now=clock.now)
    gates_at_two_sites(api, clock.now)
    gate = AnsweringGate(broker, "g1")
    yield gate
    gate.stop()


def organiser(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client, "chuyenvien").status_code == 302
    return client


def issue(client: FlaskClient, gate_id: str, action: str, **extra: str) -> Any:
    token = csrf(client.get("/cong/").text)
    return client.post(f"/cong/{gate_id}/lenh", data={"action": action, "csrf_token": token, **extra},
                       headers={"Accept": "application/json"})


def poll(client: FlaskClient, command_id: str, timeout: float = 8.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/cong/lenh/{command_id}.json").get_json()
        if body["status"] != "sent" or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_page_lists_every_gate(app: Flask, fleet: AnsweringGate, clock: Clock) -> None:
    approver = app.test_client()
    login(approver, "lanhdao")
    assert approver.get("/cong/").status_code == 403
    guard = app.test_client()
    login(guard, "baove")
    assert guard.get("/cong/").status_code == 403
    page = organiser(app).get("/cong/")
    assert page.status_code == 200
    row = page.text.split('data-gate="g1"', 1)[1].split("</tr>", 1)[0]
    for text in ("Hội trường tầng 2", "hq", "Vào", "Khóa (an ninh)", "vaora-gate 1.4.2", "Trực tuyến", "Bình thường"):
        assert text in row, text
    other = page.text.split('data-gate="r1"', 1)[1].split("</tr>", 1)[0]
    assert "Mất kết nối" in other  # never heard from
    state = organiser(app).get("/cong/trang-thai.json").get_json()
    assert [g["gate_id"] for g in state["gates"]] == ["g1", "r1"]
    assert state["gates"][0]["fail_mode"] == "secure" and state["gates"][0]["venues"] == ["Hội trường tầng 2"]


def test_lockdown_needs_confirmation_then_reaches_the_gate(app: Flask, fleet: AnsweringGate) -> None:
    client = organiser(app)
    refused = issue(client, "g1", "lockdown")
    assert refused.status_code == 400 and refused.get_json()["reason"] == "confirmation_required"
    time.sleep(0.3)
    assert fleet.received == []  # nothing was sent

    sent = issue(client, "g1", "lockdown", confirm="1", note="Sự cố an ninh cổng chính")
    assert sent.status_code == 202, sent.get_json()
    command = sent.get_json()["command"]
    assert command["status"] == "sent"
    answered = poll(client, command["command_id"])
    assert answered["status"] == "ok", answered
    assert fleet.received[0].action == "lockdown" and fleet.received[0].issued_by == "chuyenvien"
    assert fleet.received[0].note == "Sự cố an ninh cổng chính"

    page = client.get("/cong/").text
    assert "Khóa cổng" in page.split('data-gate="g1"', 1)[1].split("</tr>", 1)[0]  # the mode the gate reported
    log = page.split('id="fleet-log"', 1)[1]
    assert "Chuyenvien" in log and "Cổng đã thực hiện" in log  # who issued it, by full name
    assert "<td>Cổng chính</td>" in log and "<td>g1</td>" not in log, "the log names the gate, not its id"
    assert command["gate_name"] == "Cổng chính"


def test_unanswered_command_times_out(app: Flask, fleet: AnsweringGate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate_commands, "DEFAULT_TIMEOUT_S", 0.5)
    client = organiser(app)
    sent = issue(client, "r1", "resync")  # nobody answers for r1
    assert sent.status_code == 202
    assert sent.get_json()["timeout_s"] == 0.5
    answered = poll(client, sent.get_json()["command"]["command_id"], timeout=5)
    assert answered["status"] == "timeout"
    assert answered["reason"] == "command_timeout"


def test_bad_commands_are_refused(app: Flask, fleet: AnsweringGate) -> None:
    client = organiser(app)
    assert issue(client, "g1", "explode").status_code == 409
    assert issue(client, "nope", "open").status_code == 404
    assert issue(client, "g1", "open", note="x" * 201).status_code == 400
    assert client.get("/cong/lenh/not-a-uuid.json").status_code == 404


def test_gate_offline_after_silence(app: Flask, fleet: AnsweringGate, clock: Clock) -> None:
    clock.now = clock.now + timedelta(minutes=2)
    page = organiser(app).get("/cong/").text
    assert "Mất kết nối" in page.split('data-gate="g1"', 1)[1].split("</tr>", 1)[0]
