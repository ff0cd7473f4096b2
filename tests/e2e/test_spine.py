"""One delegate from invitation to turnstile, on real parts: only the pins are simulated.

Mosquitto, an SMTP server, central's web server and ingest worker (as processes), and a gate whose serial
scanner is one end of a pseudo-terminal pair. The code travels the way a delegate carries it: out of the
e-mail's QR image and into the scanner.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from protocols.codes import SignedClaims, encode_signed, generate_compact, generate_signing_key
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until

from .conftest import GREEN, RED, RELAY, high_periods, scan, setup_meeting


def checkin_rows(database: Path, checkin_id: str) -> list[tuple]:
    """The rows central stored for one check-in id, read straight from its SQLite file."""
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT allowed, reason, outcome FROM check_in WHERE checkin_id = ?", (UUID(checkin_id).hex,)
        ).fetchall()


@pytest.mark.parametrize("scheme", ["compact", "signed"])
def test_delegate_from_invitation_to_turnstile(central, mail, scanner_pty, lobby_gate, scheme):
    master, _ = scanner_pty
    registered = setup_meeting(central, mail, scheme, "hoa.nguyen@stp.hanoi.gov.vn")
    gate, factory = lobby_gate()
    relay = factory.pin(RELAY)
    assert relay.state == 0, "secure fail mode: locked (de-energised) at rest"
    assert gate.cache.seq >= 1, "the snapshot from central was loaded"

    record = scan(gate, master, registered["code"], before=0)
    assert record.allowed, record.reason
    assert record.delegate_id == registered["delegate_id"]
    # One pulse that ended by itself: the turnstile unlocked once and locked again. (How long it stays
    # unlocked is checked against an injected clock in tests/gate, not against this machine's wall clock.)
    wait_until(lambda: len(high_periods(relay)) == 1)
    assert relay.state == 0

    checkin_id = record.checkin_id
    rows = wait_until(lambda: checkin_rows(central.database_path, checkin_id))
    assert rows == [(1, "ok", "entered")]
    wait_until(lambda: gate.cache.outbox_row(checkin_id).delivered_at is not None)
    # No re-publish may add a second row. A delivered row is never re-published, and one sent before the ack
    # travels ahead of the next check-in on the same topic: once central stored that one, it had its chance.
    barrier = scan(gate, master, generate_compact(), before=1)
    wait_until(lambda: checkin_rows(central.database_path, barrier.checkin_id))
    assert len(checkin_rows(central.database_path, checkin_id)) == 1

    attendance = central.api("GET", f"/api/v1/meetings/{registered['meeting_id']}/attendance").json()
    assert (attendance["expected"], attendance["present"]) == (1, 1)
    (person,) = attendance["attendees"]
    assert person["name"] == "Nguyễn Thị Hoà" and person["present"] is True
    assert person["gate_id"] == "lobby-1"


def test_forged_and_unknown_codes_are_refused_and_recorded(central, mail, scanner_pty, lobby_gate):
    master, _ = scanner_pty
    registered = setup_meeting(central, mail, "signed", "binh.tran@syt.hanoi.gov.vn")
    gate, factory = lobby_gate()
    relay, red, green = factory.pin(RELAY), factory.pin(RED), factory.pin(GREEN)
    real_key_id = next(iter(gate.cache.public_keys()))
    now = datetime.now(UTC)
    forged = encode_signed(
        SignedClaims(real_key_id, registered["meeting_id"], 999, now - timedelta(hours=1),
                     now + timedelta(hours=2)),
        generate_signing_key(),
    )
    cases = [(forged, Reason.BAD_SIGNATURE), (generate_compact(), Reason.UNKNOWN_CODE)]
    for handled, (text, reason) in enumerate(cases):
        record = scan(gate, master, text, before=handled)
        assert not record.allowed
        assert record.reason is reason
        assert red.state == 1, "the red LED shows the refusal"
        rows = wait_until(lambda record=record: checkin_rows(central.database_path, record.checkin_id))
        assert rows == [(0, reason.value, "refused")]
    # Each refusal reached central (waited for above), well after a wrongly started pulse would have begun:
    # the relay's state history, not a pause, shows it never went high.
    assert not any(state.state for state in relay.states), "the relay never pulsed"
    assert not any(state.state for state in green.states), "the green LED never lit"


def test_garbage_and_overlong_lines_on_the_serial_port(central, mail, scanner_pty, lobby_gate):
    master, _ = scanner_pty
    registered = setup_meeting(central, mail, "compact", "cuong.le@sxd.hanoi.gov.vn")
    gate, factory = lobby_gate()
    relay = factory.pin(RELAY)
    os.write(master, bytes([0x00, 0xFF, 0xFE, 0x1B, 0x07, 0x80]) + b"\r")
    assert gate.wait_for_scans(1, timeout=scaled(10))
    assert gate.recent[0].reason is Reason.MALFORMED
    os.write(master, b"A" * 10_000 + b"\r")
    assert gate.wait_for_scans(2, timeout=scaled(10))
    assert gate.recent[0].reason is Reason.TOO_LONG
    assert high_periods(relay) == [] and relay.state == 0

    record = scan(gate, master, registered["code"], before=2)
    assert record.allowed, "the reader kept going after the bad input"
    wait_until(lambda: len(high_periods(relay)) == 1)
    assert gate.scans_handled == 3, "one refusal per bad line, not one per chunk"
