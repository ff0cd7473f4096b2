"""One delegate from invitation to turnstile, on real parts: only the pins are simulated.

Mosquitto, an SMTP server, central's web server and ingest worker (as processes), and a gate whose serial
scanner is one end of a pseudo-terminal pair. The code travels the way a delegate carries it: out of the
e-mail's QR image and into the scanner.
"""

from __future__ import annotations

import io
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from uuid import UUID

import pytest
import zxingcpp
from gpiozero.pins.mock import MockFactory
from PIL import Image

from devtools.mailcatcher import MailCatcher
from gate.app import Gate
from gate.config import parse_config
from protocols.codes import SignedClaims, encode_signed, generate_compact, generate_signing_key
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until

from .conftest import Central

RELAY, GREEN, RED = 17, 27, 22
UNLOCK_SECONDS = 0.5


def qr_text_of(message: EmailMessage) -> str:
    """Decode the inline QR image of a code e-mail, as a phone camera or scanner would."""
    images = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1, "the code e-mail carries exactly one inline QR image"
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(images[0].get_payload(decode=True))))
    assert len(results) == 1
    return results[0].text


def checkin_rows(database: Path, checkin_id: str) -> list[tuple]:
    """The rows central stored for one check-in id, read straight from its SQLite file."""
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT allowed, reason, outcome FROM check_in WHERE checkin_id = ?", (UUID(checkin_id).hex,)
        ).fetchall()


def high_periods(pin) -> list[float]:
    """Durations, in seconds, of every completed period the mock pin spent high.

    gpiozero's MockPin records each change with the time elapsed since the previous change.
    """
    periods, high = [], False
    for state in pin.states:
        if high and not state.state:
            periods.append(state.timestamp)
        high = bool(state.state)
    return periods


def setup_meeting(central: Central, mail: MailCatcher, scheme: str, email: str) -> dict:
    """Office creates a meeting and invitation; the organisation registers a delegate; the mail arrives."""
    now = datetime.now(UTC)
    meeting = central.api(
        "POST",
        "/api/v1/meetings",
        json={
            "title": f"Họp giao ban ({scheme})",
            "starts_at": (now + timedelta(minutes=30)).isoformat(),
            "ends_at": (now + timedelta(hours=3)).isoformat(),
            "venue": "Hội trường A",
            "site_id": "hq",
            "scheme": scheme,
        },
    )
    assert meeting.status_code == 201, meeting.text
    organisation = central.api("POST", "/api/v1/organisations", json={"name": f"Sở Tư pháp {scheme}"})
    assert organisation.status_code == 201, organisation.text
    invitation = central.api(
        "POST",
        "/api/v1/invitations",
        json={"meeting_id": meeting.json()["id"], "organisation_id": organisation.json()["id"]},
    )
    assert invitation.status_code == 201, invitation.text
    number, secret = invitation.json()["number"], invitation.json()["secret"]
    assert number.endswith("/TM-UBND")
    already = len(mail.messages)
    delegate = central.api(
        "POST",
        f"/api/v1/invitations/{number}/delegates",
        headers={"X-Invitation-Secret": secret},
        json={"name": "Nguyễn Thị Hoà", "position": "Phó Giám đốc", "email": email},
    )
    assert delegate.status_code == 201, delegate.text
    message = mail.wait_for(already + 1, timeout=30)[-1]
    assert email in message["To"]
    return {"meeting_id": meeting.json()["id"], "delegate_id": delegate.json()["id"], "code": qr_text_of(message)}


def start_gate(central: Central, broker, tmp_path: Path, device: str) -> tuple[Gate, MockFactory]:
    """Register a gate at central and start it on simulated pins with a serial scanner on ``device``."""
    response = central.api(
        "POST", "/api/v1/gates", json={"gate_id": "lobby-1", "site_id": "hq", "name": "Cổng chính 1"}
    )
    assert response.status_code == 201, response.text
    config = parse_config(
        {
            "gate": {"id": "lobby-1", "site": "hq", "fail_mode": "secure", "data_dir": str(tmp_path / "gate")},
            "central": {"url": central.url, "token": response.json()["token"], "timeout": 5},
            "mqtt": {"host": broker.host, "port": broker.port, "resend_seconds": 2},
            "scanner": {"type": "serial", "device": device, "baudrate": 9600, "terminator": "cr"},
            "pins": {"relay": RELAY, "green_led": GREEN, "red_led": RED},
            "turnstile": {"unlock_seconds": UNLOCK_SECONDS},
            "status": {"enabled": True, "port": 0},
        }
    )
    factory = MockFactory()
    gate = Gate(config, pin_factory=factory)
    gate.start()
    assert gate.scanner.connected.wait(scaled(10)), "the serial scanner opened the pty"
    wait_until(lambda: gate.transport.is_connected, timeout=30)
    return gate, factory


def scan(gate: Gate, master: int, text: str, before: int):
    """Type ``text`` on the scanner's wire and wait until the gate has handled it."""
    os.write(master, text.encode("utf-8") + b"\r")
    assert gate.wait_for_scans(before + 1, timeout=scaled(10)), "the gate handled the scan"
    return gate.recent[0]  # newest first


@pytest.mark.parametrize("scheme", ["compact", "signed"])
def test_delegate_from_invitation_to_turnstile(central, broker, mail, tmp_path, scanner_pty, scheme):
    master, device = scanner_pty
    registered = setup_meeting(central, mail, scheme, "hoa.nguyen@stp.hanoi.gov.vn")
    gate, factory = start_gate(central, broker, tmp_path, device)
    try:
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
    finally:
        gate.stop()


def test_forged_and_unknown_codes_are_refused_and_recorded(central, broker, mail, tmp_path, scanner_pty):
    master, device = scanner_pty
    registered = setup_meeting(central, mail, "signed", "binh.tran@syt.hanoi.gov.vn")
    gate, factory = start_gate(central, broker, tmp_path, device)
    try:
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
    finally:
        gate.stop()


def test_garbage_and_overlong_lines_on_the_serial_port(central, broker, mail, tmp_path, scanner_pty):
    master, device = scanner_pty
    registered = setup_meeting(central, mail, "compact", "cuong.le@sxd.hanoi.gov.vn")
    gate, factory = start_gate(central, broker, tmp_path, device)
    try:
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
    finally:
        gate.stop()
