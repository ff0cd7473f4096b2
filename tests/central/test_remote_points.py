"""Remote points ("điểm cầu") at central: which gates get a meeting, and the booking rules of its halls.

- A gate's snapshot (over HTTP, with its own token) holds the meetings with a venue at its site, each with all of
  the meeting's sites; a gate at a third site gets nothing of them. A single-site meeting is sent without
  ``sites``, as gates older than the field expect.
- Adding a remote point at a new site sends that site's gates the meeting and its delegates through the change
  stream; removing it sends the meeting without the site.
- A meeting with remote points is booked 3 working days ahead (weekends and ``VAORA_HOLIDAYS`` skipped), or by a
  leader with a reason (audited); an organiser's override is refused. Same on the page and the JSON API.
- A hall or remote point booked by an overlapping meeting is refused, naming it; cancelled meetings and
  back-to-back meetings do not clash.
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.config import CentralConfig, ConfigError
from central.core.changes import changes_since, last_seq
from central.core.db import database
from central.core.models import AuditEntry
from central.meetings import services as meetings
from central.meetings import venues
from central.meetings.booking import BookingRules, DoubleBookingError
from protocols import payloads
from protocols.meeting_days import MEETING_TZ

from ..conftest import scaled, wait_until
from .conftest import APPROVER, AUTH, START, Api, Clock, booked_ahead
from .staff import csrf, login, make_users, page_token

MAIN = "Hội trường tầng 2"
SMALL = "Phòng họp tầng 3"
REMOTE = "Điểm cầu huyện Sơn Tịnh"
BA_TO = "Điểm cầu huyện Ba Tơ"


@pytest.fixture
def central_config(central_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The test app's settings with a holiday on Tuesday 11 March 2025 (the fixtures' clock is Saturday the 8th)."""
    holidays = tmp_path / "ngay-le.txt"
    holidays.write_text("# Ngày nghỉ lễ\n2025-03-11  # nghỉ bù (giả định)\n", encoding="utf-8")
    return {**central_config, "VAORA_HOLIDAYS": str(holidays)}


@pytest.fixture
def halls(app: Flask, clock: Clock) -> dict[str, int]:
    """Two main halls at site hq, remote points at sites st and bt, and accounts of every role."""
    make_users(clock.now)
    with database.connection_context():
        made = {
            MAIN: venues.create_venue({"name": MAIN, "kind": "main", "site_id": "hq"}, actor="t", now=clock.now),
            SMALL: venues.create_venue({"name": SMALL, "kind": "main", "site_id": "hq"}, actor="t", now=clock.now),
            REMOTE: venues.create_venue({"name": REMOTE, "kind": "remote", "site_id": "st"}, actor="t",
                                        now=clock.now),
            BA_TO: venues.create_venue({"name": BA_TO, "kind": "remote", "site_id": "bt"}, actor="t", now=clock.now),
        }
    return {name: venue.id for name, venue in made.items()}


def meeting_body(halls: dict[str, int], start: datetime = START, hours: float = 3, *, hall: str = MAIN,
                 remote: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {"title": extra.pop("title", "Hội nghị trực tuyến"), "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=hours)).isoformat(), "main_venue_id": halls[hall],
            "remote_venue_ids": [halls[name] for name in remote], **extra}


def snapshot_of(client: FlaskClient, gate_id: str, token: str, *, reads_sites: bool = True) -> dict[str, Any]:
    """The snapshot a gate fetches, as raw JSON; a gate of this release says it reads the meetings' sites."""
    headers = {"Authorization": f"Bearer {token}"}
    if reads_sites:
        headers[payloads.SNAPSHOT_FEATURES_HEADER] = payloads.FEATURE_MEETING_SITES
    response = client.get(f"/api/v1/gates/{gate_id}/snapshot", headers=headers)
    assert response.status_code == 200, response.text
    return json.loads(response.data)


# --- which gates get the meeting -----------------------------------------------------------------------------


def test_each_gate_gets_the_meetings_with_a_venue_at_its_site(client: FlaskClient, api: Api, clock: Clock,
                                                               halls: dict[str, int]) -> None:
    with booked_ahead(clock):
        remote = api.post("/api/v1/meetings", meeting_body(halls, remote=(REMOTE,)))
    assert remote.status_code == 201, remote.get_json()
    assert remote.get_json()["sites"] == ["hq", "st"]
    local = api.post("/api/v1/meetings", meeting_body(halls, hall=SMALL, title="Họp giao ban"))
    assert local.status_code == 201, local.get_json()
    invitation = api.invitation(remote.get_json()["id"], api.organisation()["id"])
    assert api.register(invitation).status_code == 201
    tokens = {gate: api.gate(gate, site) for gate, site in (("g1", "hq"), ("r1", "st"), ("b1", "bt"))}

    at_hq, at_st, at_bt = (snapshot_of(client, gate, tokens[gate]) for gate in ("g1", "r1", "b1"))
    assert {m["id"]: m.get("sites") for m in at_hq["meetings"]} == {
        remote.get_json()["id"]: ["hq", "st"], local.get_json()["id"]: None}
    assert "sites" not in next(m for m in at_hq["meetings"] if m["id"] == local.get_json()["id"]), \
        "a single-site meeting is sent as gates older than the field read it"
    assert [(m["id"], m["sites"]) for m in at_st["meetings"]] == [(remote.get_json()["id"], ["hq", "st"])]
    assert [d["name"] for d in at_st["delegates"]] == ["Nguyễn Văn An"]
    assert at_bt["meetings"] == [] and at_bt["delegates"] == []
    decoded = payloads.decode(payloads.Snapshot, json.dumps(at_st))
    assert decoded.meetings[0].gate_sites == ("hq", "st")

    older_gate = snapshot_of(client, "g1", tokens["g1"], reads_sites=False)
    assert all("sites" not in meeting for meeting in older_gate["meetings"]), \
        "a gate that does not say it reads sites gets what its models accept (it admits at the main hall only)"
    assert len(older_gate["meetings"]) == 2


def test_a_remote_point_added_or_removed_reaches_that_sites_gates_by_the_change_stream(
        api: Api, clock: Clock, halls: dict[str, int]) -> None:
    with booked_ahead(clock):
        meeting = api.post("/api/v1/meetings", meeting_body(halls, remote=(REMOTE,))).get_json()
    invitation = api.invitation(meeting["id"], api.organisation()["id"])
    first = api.register(invitation).get_json()["id"]
    second = api.register(invitation, name="Trần Thị Bình", email="binh@example.vn").get_json()["id"]
    with database.connection_context():
        before = last_seq()
    with booked_ahead(clock):
        added = api.client.patch(f"/api/v1/meetings/{meeting['id']}", headers=AUTH,
                                 json={"remote_venue_ids": [halls[REMOTE], halls[BA_TO]]})
    assert added.status_code == 200, added.get_json()
    assert added.get_json()["sites"] == ["hq", "bt", "st"]  # the main hall's, then the remote points' by name
    with database.connection_context():
        changes = changes_since(before)
    bodies = [change.body for change in changes]
    assert isinstance(bodies[0], payloads.MeetingUpsert) and bodies[0].meeting.gate_sites == ("hq", "bt", "st")
    assert [(b.kind, getattr(b, "delegate", None) and b.delegate.id) for b in bodies[1:]] == [
        ("delegate_upsert", first), ("delegate_upsert", second)], "the new site's gates learn the delegates"
    assert b'"sites":["hq","bt","st"]' in payloads.encode(changes[0])

    with database.connection_context():
        before = last_seq()
    removed = api.client.patch(f"/api/v1/meetings/{meeting['id']}", headers=AUTH,
                               json={"remote_venue_ids": [halls[BA_TO]]})
    assert removed.status_code == 200, removed.get_json()
    with database.connection_context():
        (change,) = changes_since(before)  # no site gained: the delegates are not sent again
    assert isinstance(change.body, payloads.MeetingUpsert) and change.body.meeting.gate_sites == ("hq", "bt")


# --- booked N working days ahead -----------------------------------------------------------------------------


def test_working_days_skip_weekends_and_holidays() -> None:
    rules = BookingRules(min_working_days=3, holidays=frozenset({date(2025, 4, 30), date(2025, 5, 1)}))
    friday = datetime(2025, 4, 25, 16, 0, tzinfo=MEETING_TZ)
    assert rules.earliest_meeting_day(friday) == date(2025, 5, 2)  # Mon, Tue, (30/4, 1/5 off), Fri
    monday = datetime(2025, 3, 10, 9, 0, tzinfo=MEETING_TZ)
    assert rules.earliest_meeting_day(monday) == date(2025, 3, 13)
    late_evening_utc = datetime(2025, 3, 9, 18, 0, tzinfo=MEETING_TZ).astimezone(MEETING_TZ)  # Sunday
    assert rules.earliest_meeting_day(late_evening_utc) == date(2025, 3, 12)
    assert BookingRules(min_working_days=0).earliest_meeting_day(friday) == date(2025, 4, 25)


def test_the_booking_settings_are_validated(tmp_path: Path) -> None:
    good = tmp_path / "le.txt"
    good.write_text("\ufeff2026-09-02\n\n# Quốc khánh\n2026-09-01 # nghỉ\n", encoding="utf-8")
    config = CentralConfig.from_mapping({"VAORA_HOLIDAYS": str(good)})
    assert config.holidays == frozenset({date(2026, 9, 1), date(2026, 9, 2)})
    assert config.remote_booking_working_days == 3
    bad = tmp_path / "sai.txt"
    bad.write_text("2026-09-02\n02/09/2026\n", encoding="utf-8")
    with pytest.raises(ConfigError) as failure:
        CentralConfig.from_mapping({"VAORA_HOLIDAYS": str(bad), "VAORA_REMOTE_BOOKING_WORKING_DAYS": "ba"})
    assert "line 2" in failure.value.errors["VAORA_HOLIDAYS"]
    assert "VAORA_REMOTE_BOOKING_WORKING_DAYS" in failure.value.errors
    with pytest.raises(ConfigError, match="VAORA_HOLIDAYS"):
        CentralConfig.from_mapping({"VAORA_HOLIDAYS": str(tmp_path / "missing.txt")})


def test_a_late_remote_meeting_needs_a_leaders_override_on_the_api(api: Api, clock: Clock,
                                                                   halls: dict[str, int]) -> None:
    """Booked on Saturday 8 March: with 3 working days and Tuesday the 11th a holiday, Thursday the 13th is the
    first day a meeting with remote points may be held (Wednesday would be without the holiday)."""
    wednesday = START + timedelta(days=2)
    late = api.post("/api/v1/meetings", meeting_body(halls, wednesday, remote=(REMOTE,)))
    assert late.status_code == 409
    body = late.get_json()
    assert (body["reason"], body["earliest_day"]) == ("booking_too_late", "2025-03-13")
    assert "ít nhất 3 ngày làm việc" in body["message"] and "13/03/2025" in body["message"]
    assert api.post("/api/v1/meetings", meeting_body(halls, wednesday)).status_code == 201, \
        "the rule is for meetings with remote points"
    friday = START + timedelta(days=4)
    assert api.post("/api/v1/meetings", meeting_body(halls, friday, hall=SMALL, remote=(REMOTE,))).status_code == 201

    by_organiser = api.post("/api/v1/meetings", meeting_body(halls, wednesday, hall=SMALL, remote=(BA_TO,),
                                                             booking_override_reason="Chủ tịch chỉ đạo họp gấp"))
    assert by_organiser.status_code == 409
    assert by_organiser.get_json()["message"] == "Chỉ lãnh đạo mới được cho phép đăng ký muộn cuộc họp có điểm cầu"

    leader = api.approver()
    headers = {"X-CSRFToken": page_token(leader, "/meetings/")}
    overridden = leader.post("/api/v1/meetings", headers=headers, json=meeting_body(
        halls, wednesday, hall=SMALL, remote=(BA_TO,), booking_override_reason="Chủ tịch chỉ đạo họp gấp"))
    assert overridden.status_code == 201, overridden.get_json()
    with database.connection_context():
        entry = AuditEntry.get((AuditEntry.action == "meeting.booking_override")
                               & (AuditEntry.target == f"meeting:{overridden.get_json()['id']}"))
    assert entry.actor == APPROVER
    details = json.loads(entry.details)
    assert details["reason"] == "Chủ tịch chỉ đạo họp gấp" and details["earliest_day"] == "2025-03-13"


def test_the_page_shows_the_rule_and_takes_a_leaders_override(app: Flask, clock: Clock,
                                                              halls: dict[str, int]) -> None:
    form = {"title": "Hội nghị trực tuyến toàn tỉnh", "starts_at": "2025-03-12T08:00", "ends_at": "2025-03-12T11:00",
            "main_venue_id": str(halls[MAIN]), "remote_venue_ids": str(halls[REMOTE]), "scheme": "compact",
            "entry_policy": "single", "walkin_policy": "approval"}
    organiser = app.test_client()
    assert login(organiser, "chuyenvien").status_code == 302
    page = organiser.get("/meetings/new")
    assert "phải đăng ký trước ít nhất 3 ngày làm việc" in page.text
    refused = organiser.post("/meetings/new", data={**form, "csrf_token": csrf(page.text)})
    assert refused.status_code == 400
    assert "sớm nhất là ngày 13/03/2025" in refused.text
    refused = organiser.post("/meetings/new", data={**form, "booking_override_reason": "Họp gấp",
                                                    "csrf_token": csrf(page.text)})
    assert refused.status_code == 400 and "Chỉ lãnh đạo mới được cho phép" in refused.text

    leader = app.test_client()
    assert login(leader, "lanhdao").status_code == 302
    page = leader.get("/meetings/new")
    created = leader.post("/meetings/new", data={**form, "booking_override_reason": "Họp gấp theo chỉ đạo",
                                                 "csrf_token": csrf(page.text)})
    assert created.status_code == 302, created.text
    with database.connection_context():
        entry = AuditEntry.get(AuditEntry.action == "meeting.booking_override")
    assert entry.actor == "lanhdao" and json.loads(entry.details)["reason"] == "Họp gấp theo chỉ đạo"


# --- no hall booked twice ------------------------------------------------------------------------------------


def test_a_hall_booked_by_an_overlapping_meeting_is_refused_naming_it(api: Api, clock: Clock,
                                                                     halls: dict[str, int]) -> None:
    first = api.post("/api/v1/meetings", meeting_body(halls, title="Họp Ban Thường vụ")).get_json()
    overlapping = api.post("/api/v1/meetings", meeting_body(halls, START + timedelta(hours=2), title="Họp khác"))
    assert overlapping.status_code == 409
    body = overlapping.get_json()
    assert (body["reason"], body["other_meeting_id"], body["venue"]) == (
        "venue_double_booked", first["id"], MAIN)
    assert body["message"] == (f"{MAIN} đã được đặt cho cuộc họp số {first['id']} “Họp Ban Thường vụ” "
                               "từ 08:00 10/03/2025 đến 11:00 10/03/2025")
    after = api.post("/api/v1/meetings", meeting_body(halls, START + timedelta(hours=3), title="Họp nối tiếp"))
    assert after.status_code == 201, "[starts_at, ends_at): a meeting may start when the other ends"
    elsewhere = api.post("/api/v1/meetings", meeting_body(halls, hall=SMALL, title="Phòng khác"))
    assert elsewhere.status_code == 201

    moved = api.client.patch(f"/api/v1/meetings/{elsewhere.get_json()['id']}", headers=AUTH,
                             json={"main_venue_id": halls[MAIN]})
    assert moved.status_code == 409 and moved.get_json()["other_meeting_id"] == first["id"]

    cancelled = api.post(f"/api/v1/meetings/{first['id']}/status", {"status": "cancelled"})
    assert cancelled.status_code == 200
    assert api.post("/api/v1/meetings", meeting_body(halls, START + timedelta(hours=1), 2)).status_code == 201, \
        "a cancelled meeting frees its hall"


def test_a_remote_point_is_not_booked_twice_on_the_api_or_the_page(app: Flask, api: Api, clock: Clock,
                                                                   halls: dict[str, int]) -> None:
    with booked_ahead(clock):
        first = api.post("/api/v1/meetings", meeting_body(halls, remote=(REMOTE,), title="Hội nghị A")).get_json()
        clash = api.post("/api/v1/meetings", meeting_body(halls, START + timedelta(hours=1), hall=SMALL,
                                                          remote=(BA_TO, REMOTE), title="Hội nghị B"))
    assert clash.status_code == 409
    assert clash.get_json()["venue"] == REMOTE and clash.get_json()["other_meeting_id"] == first["id"]

    organiser = app.test_client()
    assert login(organiser, "chuyenvien").status_code == 302
    page = organiser.get("/meetings/new")
    clock.now = START - timedelta(days=7)  # in time for the booking rule
    refused = organiser.post("/meetings/new", data={
        "title": "Hội nghị C", "starts_at": "2025-03-10T09:00", "ends_at": "2025-03-10T10:00",
        "main_venue_id": str(halls[SMALL]), "remote_venue_ids": str(halls[REMOTE]), "scheme": "compact",
        "entry_policy": "single", "walkin_policy": "approval", "csrf_token": csrf(page.text)})
    assert refused.status_code == 400
    assert f"{REMOTE} đã được đặt cho cuộc họp số {first['id']} “Hội nghị A”" in refused.text


def test_two_concurrent_bookings_of_one_hall_cannot_both_pass(app: Flask, clock: Clock, halls: dict[str, int],
                                                              database_url: str, db: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The first create has checked the hall and not committed yet when the second one checks: the second waits
    for it (PostgreSQL's advisory lock; SQLite's write lock does the same) and is then refused, naming it."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite's write transaction (BEGIN IMMEDIATE) serialises the two creates before any check")
    checked, go = threading.Event(), threading.Event()
    real = meetings.check_double_booking

    def check_then_wait(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        if threading.current_thread().name == "first":
            checked.set()
            assert go.wait(scaled(30))

    monkeypatch.setattr(meetings, "check_double_booking", check_then_wait)
    outcome: dict[str, Any] = {}

    def book(name: str) -> None:
        with database.connection_context():
            try:
                outcome[name] = meetings.create_meeting(meeting_body(halls, title=name), clock(), actor="t").id
            except DoubleBookingError as exc:
                outcome[name] = exc

    first = threading.Thread(target=book, args=("first",), name="first")
    second = threading.Thread(target=book, args=("second",), name="second")
    first.start()
    assert checked.wait(scaled(30))
    second.start()
    # The second create waits on the lock the first holds until it commits.
    wait_until(lambda: database.execute_sql(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0] == 1,
        message="the second booking waits for the first")
    go.set()
    first.join(scaled(30))
    second.join(scaled(30))
    assert isinstance(outcome["first"], int)
    refused = outcome["second"]
    assert isinstance(refused, DoubleBookingError) and refused.other_meeting_id == outcome["first"]


def test_a_meeting_longer_than_31_days_is_refused(api: Api, halls: dict[str, int]) -> None:
    """A wrong year makes a meeting of centuries, whose per-day attendance would take minutes to count."""
    answer = api.post("/api/v1/meetings", meeting_body(halls, hours=24 * 31 + 1))
    assert answer.status_code == 400
    assert answer.get_json()["fields"] == {"ends_at": "Một cuộc họp kéo dài tối đa 31 ngày"}
    assert api.post("/api/v1/meetings", meeting_body(halls, hours=24 * 31)).status_code == 201
