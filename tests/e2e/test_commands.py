"""Remote gate commands end to end: central's service -> Mosquitto -> a running gate -> result -> central.

Real parts: Mosquitto, central's web server and ingest worker (processes) on SQLite, and a gate on simulated
pins. The test process plays the web process that issues a command (``central.gates.commands`` with
the real MQTT publisher, on central's database file); the ingest process stores the gate's answer and the
manual check-in the gate records for an ``open``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from gpiozero.pins.mock import MockFactory

from central.core.db import database, open_database
from central.core.models import AuditEntry
from central.gates import commands as gate_commands
from central.gates.models import Gate as GateRow
from central.messaging.publish import MqttPublisher
from devtools.mailcatcher import MailCatcher
from gate.app import Gate
from gate.config import parse_config
from tests.conftest import scaled, wait_until
from tests.gate.gate_helpers import IdleScanner

from .conftest import Central, high_periods, setup_meeting

RELAY, GREEN, RED = 17, 27, 22
UNLOCK_SECONDS = 0.5
MAX_AGE_S = 60.0
"""Long enough that a gate restarted on a loaded machine is back well within it; the stale case backdates its
command (``issue(now=...)``) instead of waiting this long."""
ANSWER_TIMEOUT_S = 20.0


@pytest.fixture
def central_db(central: Central) -> Iterator[None]:
    """This process opened on central's database, like the web process that issues commands."""
    open_database(central.env["VAORA_DATABASE_URL"])
    database.connect(reuse_if_open=True)
    yield
    if not database.is_closed():
        database.close()


@pytest.fixture
def publisher(broker: Any) -> Iterator[MqttPublisher]:
    client = MqttPublisher(broker.host, broker.port)
    assert client.wait_connected(scaled(10))
    yield client
    client.stop()


class GateRunner:
    """Registers gate ``lobby-1`` at central and (re)starts it on fresh simulated pins, same data directory."""

    def __init__(self, central: Central, broker: Any, tmp_path: Path) -> None:
        response = central.api("POST", "/api/v1/gates", json={"gate_id": "lobby-1", "site_id": "hq"})
        assert response.status_code == 201, response.text
        self.config = parse_config({
            "gate": {"id": "lobby-1", "site": "hq", "fail_mode": "secure", "data_dir": str(tmp_path / "gate")},
            "central": {"url": central.url, "token": response.json()["token"], "timeout": 5},
            "mqtt": {"host": broker.host, "port": broker.port, "resend_seconds": 1},
            "scanner": {"type": "stdin"},
            "pins": {"relay": RELAY, "green_led": GREEN, "red_led": RED},
            "turnstile": {"unlock_seconds": UNLOCK_SECONDS},
            "status": {"enabled": False},
            "commands": {"max_age_seconds": MAX_AGE_S},
        })
        self.gate: Gate | None = None
        self.factory: MockFactory | None = None

    def start(self) -> Gate:
        self.factory = MockFactory()
        self.gate = Gate(self.config, pin_factory=self.factory, scanner=IdleScanner(), delivery_poll_s=0.1)
        self.gate.start()
        transport: Any = self.gate.transport
        assert transport.wait_subscribed(scaled(10)), "the gate subscribed to its commands"
        return self.gate

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.stop()
            self.gate = None

    @property
    def relay(self) -> Any:
        assert self.factory is not None
        return self.factory.pin(RELAY)


@pytest.fixture
def runner(central: Central, broker: Any, tmp_path: Path) -> Iterator[GateRunner]:
    gate_runner = GateRunner(central, broker, tmp_path)
    yield gate_runner
    gate_runner.stop()


def manual_checkins(database_path: Path, command_id: UUID) -> list[tuple]:
    """Central's stored check-ins caused by one command, read straight from its SQLite file."""
    with sqlite3.connect(database_path) as connection:
        return connection.execute(
            "SELECT c.operator, c.manual, c.reason, c.outcome, c.meeting_id, c.delegate_id, g.gate_id "
            "FROM check_in c JOIN gate g ON g.id = c.gate_id WHERE c.command_id = ?", (command_id.hex,)
        ).fetchall()


def test_remote_open_is_acknowledged_and_stored_as_a_manual_entry_with_the_guards_name(
    central: Central, central_db: None, runner: GateRunner, publisher: MqttPublisher, mail: MailCatcher,
) -> None:
    registered = setup_meeting(central, mail, "compact", "vang.lai@sct.hanoi.gov.vn")
    runner.start()
    relay = runner.relay
    assert relay.state == 0

    row = gate_commands.issue("lobby-1", "open", "bao-ve-an", note="khách được duyệt",
                              meeting_id=registered["meeting_id"], delegate_id=registered["delegate_id"],
                              publisher=publisher)
    answered = gate_commands.wait(row.command_id, timeout=scaled(ANSWER_TIMEOUT_S))
    assert (answered.status, answered.reason) == ("ok", None), answered.reason
    wait_until(lambda: len(high_periods(relay)) == 1)  # one pulse that ended by itself (length: tests/gate)
    rows = wait_until(lambda: manual_checkins(central.database_path, row.command_id))
    assert rows == [("bao-ve-an", 1, "manual_open", "entered", registered["meeting_id"],
                     registered["delegate_id"], "lobby-1")]
    audit = AuditEntry.get(AuditEntry.action == "gate.command.open")
    assert audit.actor == "bao-ve-an" and audit.target == "gate:lobby-1"

    locked = gate_commands.wait(gate_commands.issue("lobby-1", "lockdown", "truong-ca", publisher=publisher)
                                .command_id, timeout=scaled(ANSWER_TIMEOUT_S))
    assert locked.status == "ok"
    assert runner.gate is not None and runner.gate.mode == "lockdown"
    wait_until(lambda: GateRow.get(GateRow.gate_id == "lobby-1").mode == "lockdown")
    refused = gate_commands.wait(gate_commands.issue("lobby-1", "open", "bao-ve-an", publisher=publisher)
                                 .command_id, timeout=scaled(ANSWER_TIMEOUT_S))
    assert (refused.status, refused.reason) == ("failed", "locked_down")
    assert len(high_periods(relay)) == 1 and relay.state == 0
    resumed = gate_commands.wait(gate_commands.issue("lobby-1", "resume", "truong-ca", publisher=publisher)
                                 .command_id, timeout=scaled(ANSWER_TIMEOUT_S))
    assert resumed.status == "ok" and runner.gate.mode == "normal"


def test_offline_gate_times_out_then_executes_within_the_max_age_and_refuses_after_it(
    central: Central, central_db: None, runner: GateRunner, publisher: MqttPublisher,
) -> None:
    runner.start()  # the broker now holds the gate's persistent session and its subscription
    runner.stop()

    row = gate_commands.issue("lobby-1", "open", "bao-ve-an", publisher=publisher)
    waited = gate_commands.wait(row.command_id, timeout=1.0)
    assert (waited.status, waited.reason) == ("timeout", "command_timeout")
    runner.start()  # back within the max age: the queued command runs
    wait_until(lambda: len(high_periods(runner.relay)) == 1, timeout=30)
    late = wait_until(lambda: (r := gate_commands.get(row.command_id)).status == "ok" and r, timeout=30)
    assert late.answered_at is not None
    assert wait_until(lambda: manual_checkins(central.database_path, row.command_id))[0][0] == "bao-ve-an"
    runner.stop()

    # Issued while the gate is away and older than the max age by the time it returns (backdated, not waited for).
    stale = gate_commands.issue("lobby-1", "open", "bao-ve-an", publisher=publisher,
                                now=datetime.now(UTC) - timedelta(seconds=MAX_AGE_S + 30))
    assert gate_commands.wait(stale.command_id, timeout=0.5).status == "timeout"
    runner.start()
    refused = wait_until(lambda: (r := gate_commands.get(stale.command_id)).status == "failed" and r, timeout=30)
    assert refused.reason == "stale_command"
    # The gate answers after deciding: had it opened, the relay's history would show it.
    assert not any(state.state for state in runner.relay.states), "a stale open never opens"
    assert manual_checkins(central.database_path, stale.command_id) == []
