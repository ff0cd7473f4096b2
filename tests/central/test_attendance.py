"""Attendance per meeting, fed by stored check-ins; and check-in storage rules (once per id, gate checks)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from central.core.db import database
from central.gates.checkins import store_checkin
from central.gates.models import CheckIn as CheckInRow
from central.gates.models import Gate
from central.registration.models import Delegate
from protocols.payloads import CheckIn, Direction, Outcome
from protocols.reasons import Reason

from .conftest import START, Api


def checkin(delegate_id: int | None, meeting_id: int, minutes: int, **extra: Any) -> CheckIn:
    """A check-in from gate g1 ``minutes`` after the meeting starts."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "gate_id": "g1",
        "site_id": "hq",
        "direction": Direction.IN,
        "scanned_at": START + timedelta(minutes=minutes),
        "allowed": True,
        "reason": Reason.OK,
        "outcome": Outcome.ENTERED,
        "meeting_id": meeting_id,
        "delegate_id": delegate_id,
    }
    values.update(extra)
    return CheckIn(**values)


def test_attendance_counts_distinct_entered_delegates(api: Api) -> None:
    meeting = api.meeting()
    invitation = api.invitation(meeting_id=meeting["id"])
    an = api.register(invitation).get_json()["id"]
    binh = api.register(invitation, name="Trần Thị Bình", email="binh@example.vn").get_json()["id"]
    chi = api.register(invitation, name="Lê Chí", email="chi@example.vn").get_json()["id"]
    api.gate("g1")
    with database.connection_context():
        Delegate.update(revoked_at=START).where(Delegate.id == chi).execute()
        received = START + timedelta(minutes=10)  # after every scan: an arrival is never later than its receipt
        acks = [
            store_checkin(checkin(an, meeting["id"], 5), "g1", received),
            store_checkin(checkin(an, meeting["id"], -10), "g1", received),  # earlier entry, arrives later
            store_checkin(checkin(binh, meeting["id"], 1, outcome=Outcome.NOT_PASSED), "g1", received),
            store_checkin(
                checkin(binh, meeting["id"], 2, allowed=False, reason=Reason.ALREADY_INSIDE,
                        outcome=Outcome.REFUSED), "g1", received,
            ),
            store_checkin(checkin(binh, meeting["id"], 3, direction=Direction.OUT), "g1", received),
        ]
    assert [ack.status for ack in acks] == ["stored"] * 5

    report = api.get(f"/api/v1/meetings/{meeting['id']}/attendance").get_json()
    assert (report["expected"], report["present"]) == (2, 1)
    people = {person["name"]: person for person in report["attendees"]}
    assert people["Nguyễn Văn An"]["present"] is True
    assert people["Nguyễn Văn An"]["first_entry_at"] == (START - timedelta(minutes=10)).isoformat()
    assert people["Nguyễn Văn An"]["gate_id"] == "g1"
    assert people["Nguyễn Văn An"]["organisation"] == "Sở Tài chính"
    assert people["Trần Thị Bình"]["present"] is False and people["Trần Thị Bình"]["first_entry_at"] is None
    assert people["Lê Chí"]["revoked"] is True


def test_checkin_is_stored_once_and_gate_must_match(api: Api) -> None:
    meeting = api.meeting()
    api.gate("g1")
    payload = checkin(None, meeting["id"], 0, credential="abc")
    with database.connection_context():
        assert store_checkin(payload, "g1", START).status == "stored"
        assert store_checkin(payload, "g1", START).status == "duplicate"
        assert CheckInRow.select().count() == 1
        mismatch = store_checkin(checkin(None, meeting["id"], 0), "g2", START)
        assert (mismatch.status, mismatch.reason) == ("rejected", "gate_mismatch")
        unknown = store_checkin(checkin(None, meeting["id"], 0, gate_id="g9"), "g9", START)
        assert (unknown.status, unknown.reason) == ("rejected", "unknown_gate")
        stale = store_checkin(checkin(424242, 999, 0), "g1", START)  # ids central does not know
        assert stale.status == "stored"
        assert CheckInRow.select().count() == 2
        assert Gate.get(Gate.gate_id == "g1").last_seen_at == START


def test_attendance_api_counts_each_day_of_a_three_day_meeting(api: Api) -> None:
    # 08:00 on 10/03 to 17:00 on 12/03 in Hà Nội, stored through the gates' ingest.
    meeting = api.meeting(ends_at=(START + timedelta(days=2, hours=9)).isoformat())
    invitation = api.invitation(meeting_id=meeting["id"])
    an = api.register(invitation).get_json()["id"]
    binh = api.register(invitation, name="Trần Thị Bình", email="binh@example.vn").get_json()["id"]
    api.gate("g1")
    day = 24 * 60
    with database.connection_context():
        for delegate, minutes in ((an, -10), (an, 60), (an, day - 20), (binh, 2 * day + 5), (binh, day + 19 * 60)):
            at = START + timedelta(minutes=minutes)
            assert store_checkin(checkin(delegate, meeting["id"], minutes), "g1", at).status == "stored"
    report = api.get(f"/api/v1/meetings/{meeting['id']}/attendance").get_json()
    assert report["days"] == [{"day": 1, "date": "2025-03-10", "present": 1},
                              {"day": 2, "date": "2025-03-11", "present": 2},
                              {"day": 3, "date": "2025-03-12", "present": 1}]
    people = {person["name"]: person["day_entries"] for person in report["attendees"]}
    assert people["Nguyễn Văn An"] == [(START - timedelta(minutes=10)).isoformat(),
                                       (START + timedelta(minutes=day - 20)).isoformat(), None]
    assert people["Trần Thị Bình"] == [None, (START + timedelta(minutes=day + 19 * 60)).isoformat(),  # 03:00 day 3
                                       (START + timedelta(minutes=2 * day + 5)).isoformat()]
