"""Gate clocks at central: the offset a heartbeat shows (fleet page, dashboard, /metrics), absurd clocks flagged
and not trusted, check-ins stored at the corrected time with the gate's raw time kept, acks that let the gate
measure its offset. Times are the test's frozen clock; the gate's clock is that plus a skew."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.gates import commands as gate_commands
from central.gates.checkins import record_heartbeat, store_checkins
from central.gates.clock import arrival, is_skewed
from central.gates.models import CheckIn as CheckInRow
from central.gates.models import Gate
from central.messaging.ingest import ack_messages
from protocols.payloads import (
    MAX_ACKS_PER_BATCH,
    MAX_PAYLOAD_BYTES,
    CheckIn,
    Command,
    Direction,
    Heartbeat,
    Outcome,
    decode,
    decode_acks,
)
from protocols.reasons import Reason

from .conftest import Api, Clock
from .staff import login, make_users
from .test_dashboard import dashboard_url
from .test_dashboard import world as world  # the dashboard's meeting, gates g1 (hq) and r1 (st)


def beat(gate_id: str, sent_at: datetime, offset: float | None = None) -> Heartbeat:
    return Heartbeat(gate_id=gate_id, sent_at=sent_at, cache_seq=0, outbox_pending=0,
                     software_version="vaora-gate 1.5", clock_offset_s=offset)


def checkin(scanned_at: datetime, offset: float | None = None, gate_id: str = "g1", **extra: Any) -> CheckIn:
    return CheckIn(id=uuid.uuid4(), gate_id=gate_id, site_id="hq", direction=Direction.IN, scanned_at=scanned_at,
                   allowed=True, reason=Reason.MANUAL_OPEN, outcome=Outcome.ENTERED, manual=True,
                   clock_offset_s=offset, **extra)


def stored(payload: CheckIn) -> CheckInRow:
    return CheckInRow.get(CheckInRow.checkin_id == payload.id)


def organiser(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client, "chuyenvien").status_code == 302
    return client


def test_a_heartbeat_five_minutes_ahead_is_shown_on_the_fleet_page_the_dashboard_and_metrics(
    app: Flask, world: dict[str, Any], clock: Clock,
) -> None:
    now = clock.now
    with database.connection_context():
        assert record_heartbeat(beat("g1", now + timedelta(seconds=300), offset=-300.0), "g1", now) == Reason.OK
        assert record_heartbeat(beat("r1", now - timedelta(seconds=1.5)), "r1", now) == Reason.OK  # within 2 s
        g1 = Gate.get(Gate.gate_id == "g1")
    assert (g1.clock_offset_s, g1.clock_reported_offset_s, g1.clock_suspect) == (-300.0, -300.0, False)
    client = organiser(app)
    gates = {g["gate_id"]: g for g in client.get("/cong/trang-thai.json").get_json()["gates"]}
    assert (gates["g1"]["clock_offset_s"], gates["g1"]["clock_skewed"], gates["g1"]["clock_suspect"]) == \
        (-300.0, True, False)
    assert (gates["r1"]["clock_offset_s"], gates["r1"]["clock_skewed"]) == (1.5, False)
    fleet = client.get("/cong/").text
    assert fleet.count("Lệch giờ -300 s") == 1 and "Lệch giờ +2 s" not in fleet
    dashboard = client.get(dashboard_url(world)).text
    assert dashboard.count("Lệch giờ -300 s") == 1
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'vaora_gate_clock_offset_seconds{gate="g1"} -300.0' in metrics
    assert 'vaora_gate_clock_offset_seconds{gate="r1"} 1.5' in metrics


@pytest.mark.parametrize(("measured", "reported", "skewed"), [
    (-300.0, None, True), (-300.0, -300.1, True), (300.1, 299.9, True), (300.1, None, True),
    (1.9, None, False), (-1.9, -2.0, False),
    (5.0, 0.01, False),  # a heartbeat that waited 5 s in a queue; the gate's acks say it is right on time
    (None, None, False),
])
def test_a_gate_is_flagged_only_when_certainly_more_than_2_s_off(measured: float | None, reported: float | None,
                                                                 skewed: bool) -> None:
    assert is_skewed(measured, reported) is skewed


def test_a_heartbeat_years_off_is_flagged_and_not_trusted(
    app: Flask, api: Api, clock: Clock,
) -> None:
    make_users(clock.now)
    api.gate("g1")
    now = clock.now
    with database.connection_context():
        record_heartbeat(beat("g1", datetime(1970, 1, 1, 0, 5, tzinfo=UTC)), "g1", now)
        gate = Gate.get(Gate.gate_id == "g1")
        booted = datetime(1970, 1, 1, 0, 5, tzinfo=UTC)
        assert gate.clock_suspect and gate.clock_offset_s == (now - booted).total_seconds()
        # Its offset is not used for a check-in that carries none: a plausible gate time is kept as it came.
        plausible = checkin(now - timedelta(seconds=10))
        store_checkins([(plausible, "g1")], now)
        assert stored(plausible).scanned_at == now - timedelta(seconds=10) and stored(plausible).clock_offset_s is None
    page = organiser(app).get("/cong/").text
    assert "Đồng hồ sai" in page and "Lệch giờ" not in page


@pytest.mark.parametrize("skew", [300.0, -300.0])
def test_a_check_in_is_stored_at_the_time_corrected_by_the_offset_it_carries(api: Api, clock: Clock,
                                                                             skew: float) -> None:
    api.gate("g1")
    now = clock.now
    scanned = now - timedelta(seconds=3)  # central's time of the scan
    gate_time = scanned + timedelta(seconds=skew)
    payload = checkin(gate_time, offset=-skew, completed_at=gate_time + timedelta(seconds=1))
    with database.connection_context():
        [ack] = store_checkins([(payload, "g1")], now)
        row = stored(payload)
    assert (row.scanned_at, row.completed_at, row.gate_scanned_at) == (scanned, scanned + timedelta(seconds=1),
                                                                        gate_time)
    assert (row.clock_offset_s, row.clock_suspect, row.received_at) == (-skew, False, now)
    # The ack lets the gate measure its offset: central's clock, and the check-in's own gate time echoed.
    assert (ack.status, ack.sent_at, ack.gate_time) == ("stored", now, payload.completed_at)


def test_a_check_in_of_an_older_gate_is_corrected_by_its_last_heartbeat(api: Api, clock: Clock) -> None:
    api.gate("g1")
    now = clock.now
    with database.connection_context():
        record_heartbeat(beat("g1", now + timedelta(seconds=300)), "g1", now)  # a gate without the new fields
        payload = checkin(now + timedelta(seconds=290))
        store_checkins([(payload, "g1")], now)
        row = stored(payload)
    assert (row.scanned_at, row.clock_offset_s, row.clock_suspect) == (now - timedelta(seconds=10), -300.0, False)


@pytest.mark.parametrize("raw", [
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),  # beyond year 9999 in UTC
    datetime(1, 1, 1, tzinfo=UTC),
], ids=["1970", "9999", "9999-05:00", "0001"])
def test_an_absurd_scan_time_is_stored_at_the_receive_time_and_flagged(api: Api, clock: Clock,
                                                                        raw: datetime) -> None:
    api.gate("g1")
    now = clock.now
    payload = checkin(raw, completed_at=raw)
    with database.connection_context():
        [ack] = store_checkins([(payload, "g1")], now)
        row = stored(payload)
    assert ack.status == "stored"
    assert (row.scanned_at, row.completed_at, row.clock_suspect) == (now, now, True)
    if raw.utcoffset() == timedelta(0):
        assert row.gate_scanned_at == raw


def test_a_check_in_from_the_future_of_a_gate_with_no_known_offset_is_stored_at_its_receipt(api: Api,
                                                                                          clock: Clock) -> None:
    api.gate("g1")
    now = clock.now
    payload = checkin(now + timedelta(seconds=300))  # an older gate, 5 minutes ahead, no heartbeat yet
    with database.connection_context():
        store_checkins([(payload, "g1")], now)
        row = stored(payload)
    assert (row.scanned_at, row.gate_scanned_at, row.clock_offset_s, row.clock_suspect) == \
        (now, now + timedelta(seconds=300), -300.0, False), "corrected, but minutes off is not absurd"


def test_a_gate_booted_at_1970_that_measured_its_offset_is_corrected_and_still_flagged(api: Api,
                                                                                       clock: Clock) -> None:
    api.gate("g1")
    now = clock.now
    raw = datetime(1970, 1, 1, 0, 10, tzinfo=UTC)
    scanned = now - timedelta(seconds=2)
    payload = checkin(raw, offset=(scanned - raw).total_seconds())
    with database.connection_context():
        store_checkins([(payload, "g1")], now)
        row = stored(payload)
    assert (row.scanned_at, row.gate_scanned_at, row.clock_suspect) == (scanned, raw, True)


def test_an_offset_that_makes_a_plausible_time_absurd_is_not_applied() -> None:
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    result = arrival(now - timedelta(seconds=5), now, 1e9, None)  # would put the scan 31 years ahead
    assert (result.at, result.offset_s, result.suspect) == (now - timedelta(seconds=5), None, True)


def test_a_command_carries_the_offset_central_measured(api: Api, clock: Clock) -> None:
    api.gate("g1")
    now = clock.now
    sent: list[bytes] = []

    class Publisher:
        def publish(self, topic: str, payload: bytes, qos: int) -> None:
            sent.append(payload)

    make_users(now)
    with database.connection_context():
        record_heartbeat(beat("g1", now - timedelta(seconds=300)), "g1", now)
        gate_commands.issue("g1", "resync", "chuyenvien", publisher=Publisher(), now=now)
    assert decode(Command, sent[0]).gate_clock_offset_s == 300.0


def test_payloads_of_older_gates_without_the_clock_fields_are_accepted() -> None:
    old_beat = ('{"v":1,"gate_id":"g1","sent_at":"2026-12-07T09:00:00Z","cache_seq":3,"outbox_pending":0,'
                '"software_version":"vaora-gate 1.4"}')
    assert decode(Heartbeat, old_beat).clock_offset_s is None
    old_checkin = (f'{{"v":1,"id":"{uuid.uuid4()}","gate_id":"g1","site_id":"hq","direction":"in",'
                   '"scanned_at":"2026-12-07T09:00:00Z","allowed":true,"reason":"ok","outcome":"entered"}')
    assert decode(CheckIn, old_checkin).clock_offset_s is None


def test_acks_keep_under_the_payload_limit_a_batch_carries_centrals_clock_once(api: Api, clock: Clock) -> None:
    api.gate("g1")
    now = clock.now
    longest = "x" * 128  # the longest credential and operator: the largest check-ins, and their acks
    payloads = [checkin(now - timedelta(seconds=1), offset=-0.5, credential=longest, operator="y" * 200)
                for _ in range(MAX_ACKS_PER_BATCH + 1)]
    with database.connection_context():
        acks = store_checkins([(payload, "g1") for payload in payloads], now)
    messages = ack_messages("g1", acks)
    assert len(messages) == 2 and max(len(message) for message in messages) <= MAX_PAYLOAD_BYTES
    received = [ack for message in messages for ack in decode_acks(message)]
    assert [ack.checkin_id for ack in received] == [payload.id for payload in payloads]
    assert {(ack.sent_at, ack.gate_time) for ack in received} == {(now, None)}, "no round trip from a batch"
    [single] = [decode_acks(message)[0] for message in ack_messages("g1", acks[:1])]
    assert (single.sent_at, single.gate_time) == (now, payloads[0].scanned_at)


def test_the_dashboard_marks_an_arrival_whose_gate_clock_was_absurd(
    app: Flask, world: dict[str, Any], clock: Clock,
) -> None:
    now = clock.now
    booted = checkin(datetime(1970, 1, 1, tzinfo=UTC), meeting_id=world["meeting"],
                     delegate_id=world["people"]["Nguyễn Văn An"])
    fine = checkin(now - timedelta(seconds=5), offset=0.0, meeting_id=world["meeting"],
                   delegate_id=world["people"]["Lê Minh Chi"])
    with database.connection_context():
        store_checkins([(booted, "g1"), (fine, "g1")], now)
    client = organiser(app)
    arrivals = {a["name"]: a for a in client.get(dashboard_url(world, "/trang-thai.json")).get_json()["arrivals"]}
    assert arrivals["Nguyễn Văn An"]["clock_suspect"] and not arrivals["Lê Minh Chi"]["clock_suspect"]
    assert datetime.fromisoformat(arrivals["Nguyễn Văn An"]["at"]) == now
    assert client.get(dashboard_url(world)).text.count("Giờ đã hiệu chỉnh") == 1


def test_an_older_gate_gets_acks_and_commands_it_can_read(api: Api, clock: Clock) -> None:
    """A gate that predates the clock fields (its models forbid unknown fields) sends none, and gets none."""
    api.gate("g1")
    now = clock.now
    sent: list[bytes] = []

    class Publisher:
        def publish(self, topic: str, payload: bytes, qos: int) -> None:
            sent.append(payload)

    make_users(now)
    sent_at = (now - timedelta(seconds=300)).isoformat()
    old_beat = (f'{{"v":1,"gate_id":"g1","sent_at":"{sent_at}","cache_seq":0,"outbox_pending":0,'
                '"software_version":"vaora-gate 1.4"}')
    old_checkin = (f'{{"v":1,"id":"{uuid.uuid4()}","gate_id":"g1","site_id":"hq","direction":"in",'
                   f'"scanned_at":"{now.isoformat()}","allowed":true,"reason":"ok","outcome":"entered"}}')
    with database.connection_context():
        record_heartbeat(decode(Heartbeat, old_beat), "g1", now)
        gate = Gate.get(Gate.gate_id == "g1")
        assert (gate.clock_offset_s, gate.measures_clock) == (300.0, False), "measured all the same"
        acks = store_checkins([(decode(CheckIn, old_checkin), "g1"), (decode(CheckIn, old_checkin), "g1")], now)
        gate_commands.issue("g1", "resync", "chuyenvien", publisher=Publisher(), now=now)
    for message in [*ack_messages("g1", acks[:1]), *ack_messages("g1", acks)]:
        assert b"sent_at" not in message and b"gate_time" not in message
    assert b"gate_clock_offset_s" not in sent[0]
