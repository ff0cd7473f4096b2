"""A gate whose clock is 5 minutes ahead or behind, against a real Mosquitto and central's real web server and
ingest worker (processes): it obeys a fresh remote command and refuses an old one, central stores its check-ins
at the corrected time, and the fleet page flags it.

The gate's clock is injected: this machine's clock plus the skew, while central's processes read this machine's
clock. So the true offset is exactly ``-skew``, and every bound below follows from causality (a message arrives
after it was sent), not from a wall-clock tolerance.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from gpiozero.pins.mock import MockFactory

from central.gates import commands as gate_commands
from central.gates.models import Gate as GateRow
from central.messaging.publish import MqttPublisher
from gate.app import Gate
from gate.clock import MAX_SAMPLE_WIDTH_S
from gate.config import parse_config
from tests.central.staff import make_users
from tests.central.test_dashboard import staff_session
from tests.conftest import scaled, wait_until
from tests.gate.gate_helpers import IdleScanner

from .conftest import Central
from .test_commands import central_db as central_db  # this process on central's database, like its web process
from .test_commands import publisher as publisher  # a real MQTT publisher, as central's web process has

MAX_AGE_S = 60.0
ANSWER_TIMEOUT_S = 20.0


class SkewedGate:
    """Gate ``lobby-1`` registered at central, its clock ``skew`` seconds off this machine's."""

    def __init__(self, central: Central, broker: Any, tmp_path: Path, skew: float) -> None:
        self.skew = timedelta(seconds=skew)
        response = central.api("POST", "/api/v1/gates", json={"gate_id": "lobby-1", "site_id": "hq"})
        assert response.status_code == 201, response.text
        config = parse_config({
            "gate": {"id": "lobby-1", "site": "hq", "fail_mode": "secure", "data_dir": str(tmp_path / "gate")},
            "central": {"url": central.url, "token": response.json()["token"], "timeout": 5},
            "mqtt": {"host": broker.host, "port": broker.port, "resend_seconds": 1, "heartbeat_seconds": 0.2},
            "scanner": {"type": "stdin"},
            "pins": {"relay": 17, "green_led": 27, "red_led": 22},
            "turnstile": {"unlock_seconds": 0.3},
            "status": {"enabled": False},
            "commands": {"max_age_seconds": MAX_AGE_S},
        })
        self.gate = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), clock=self.clock,
                         wall_clock=self.clock, delivery_poll_s=0.1)

    def clock(self) -> datetime:
        return datetime.now(UTC) + self.skew


@pytest.fixture(params=[300.0, -300.0], ids=["gate+5min", "gate-5min"])
def skewed(request: pytest.FixtureRequest, central: Central, broker: Any, tmp_path: Path) -> Iterator[SkewedGate]:
    unit = SkewedGate(central, broker, tmp_path, request.param)
    unit.gate.start()
    transport: Any = unit.gate.transport
    assert transport.wait_subscribed(scaled(10))
    yield unit
    unit.gate.stop()


def stored_checkin(database_path: Path, command_id: UUID) -> tuple[datetime, datetime, float | None, int] | None:
    """(scanned_at, gate_scanned_at, clock_offset_s, clock_suspect) of the check-in a command caused."""
    with sqlite3.connect(database_path) as connection:
        row = connection.execute("SELECT scanned_at, gate_scanned_at, clock_offset_s, clock_suspect FROM check_in "
                                 "WHERE command_id = ?", (command_id.hex,)).fetchone()
    if row is None:
        return None
    return (datetime.fromisoformat(row[0]).replace(tzinfo=UTC), datetime.fromisoformat(row[1]).replace(tzinfo=UTC),
            row[2], row[3])


def open_once(publisher: MqttPublisher, **kwargs: Any) -> Any:
    row = gate_commands.issue("lobby-1", "open", "bao-ve-an", publisher=publisher, **kwargs)
    return gate_commands.wait(row.command_id, timeout=scaled(ANSWER_TIMEOUT_S))


def test_a_skewed_gate_obeys_fresh_commands_refuses_old_ones_and_is_stored_and_shown_corrected(
    central: Central, central_db: None, publisher: MqttPublisher, skewed: SkewedGate,
) -> None:
    gate, true_offset = skewed.gate, -skewed.skew.total_seconds()
    # Central measures the offset from a heartbeat: receive time - the gate's sent_at >= the true offset.
    measured = wait_until(lambda: GateRow.get(GateRow.gate_id == "lobby-1").clock_offset_s)
    assert measured >= true_offset and not GateRow.get(GateRow.gate_id == "lobby-1").clock_suspect

    # Before any ack, the gate judges the command by the offset central sent in it: a fresh one is obeyed.
    assert gate.central_clock.offset_s() is None
    first = open_once(publisher)
    assert (first.status, first.reason) == ("ok", None)
    stored = wait_until(lambda: stored_checkin(central.database_path, first.command_id))
    scanned_at, gate_time, offset, suspect = stored
    # The check-in carried no estimate: central corrected it by the heartbeat's offset (an upper bound).
    assert scanned_at == gate_time + timedelta(seconds=offset) and offset >= true_offset and not suspect
    assert scanned_at >= gate_time + timedelta(seconds=true_offset), "never earlier than central's true time"

    # Central's ack of that check-in gave the gate a round trip: its bounds hold the true offset.
    sample = wait_until(lambda: gate.central_clock.best_sample())
    assert sample.lower_bound_s <= true_offset <= sample.upper_bound_s
    assert sample.width_s <= MAX_SAMPLE_WIDTH_S

    # Now the gate's own estimate judges commands and travels with check-ins.
    second = open_once(publisher)
    assert (second.status, second.reason) == ("ok", None)
    scanned_at, gate_time, offset, suspect = wait_until(lambda: stored_checkin(central.database_path,
                                                                               second.command_id))
    assert offset is not None and true_offset - MAX_SAMPLE_WIDTH_S <= offset <= true_offset
    true_time = gate_time + timedelta(seconds=true_offset)
    assert true_time - timedelta(seconds=MAX_SAMPLE_WIDTH_S) <= scanned_at <= true_time and not suspect

    # A command issued longer ago than the max age (backdated on central's clock) is refused.
    old = open_once(publisher, now=datetime.now(UTC) - timedelta(seconds=MAX_AGE_S + 30))
    assert (old.status, old.reason) == ("failed", "stale_command")

    # The fleet page flags the gate with the offset central measured (>= the true one, rounded to the second).
    make_users(datetime.now(UTC))
    organiser = staff_session(central.url, "chuyenvien")
    page = organiser.get(f"{central.url}/cong/", timeout=scaled(30))
    assert page.status_code == 200
    flags = re.findall(r"Lệch giờ ([+-]\d+) s", page.text)
    assert len(flags) == 1 and int(flags[0]) >= true_offset, page.text[page.text.find("fleet-seen"):][:600]
    state = organiser.get(f"{central.url}/cong/trang-thai.json", timeout=scaled(30)).json()
    [lobby] = [g for g in state["gates"] if g["gate_id"] == "lobby-1"]
    assert lobby["clock_skewed"] and lobby["clock_offset_s"] >= true_offset and not lobby["clock_suspect"]
