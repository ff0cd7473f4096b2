"""The live attendance dashboard: roles, counts per organisation and venue, late arrivals, substitutes, walk-ins,
manual marks (reason required, audited, still exported) and the server-sent event stream (a check-in written by
another database connection reaches a connected client; Last-Event-ID resumes; a slow client is dropped)."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from central.attendance.live import CHECKINS, LiveHub
from central.core.db import database
from central.core.models import AuditEntry, Change
from central.gates.checkins import store_checkin
from central.gates.models import CheckIn, Gate
from central.gates.snapshot import build_snapshot
from central.invitations.models import Invitation
from central.meetings import venues
from central.meetings.models import Meeting
from protocols import payloads
from protocols.reasons import Reason

from ..conftest import CHROMIUM, ThreadedServer
from .conftest import START, Api, Clock, booked_ahead
from .staff import PASSWORD, csrf, login, make_users
from .test_browser import _login

MAIN = "Hội trường tầng 2"
REMOTE = "Điểm cầu huyện Sơn Tịnh"


@pytest.fixture
def world(app: Flask, api: Api, clock: Clock) -> dict[str, Any]:
    """A meeting in the main hall (site hq) with a remote point (site st); two organisations, three delegates;
    gate g1 at hq and r1 at st; one account per role."""
    make_users(clock.now)
    with database.connection_context():
        main = venues.create_venue({"name": MAIN, "kind": "main", "site_id": "hq"}, actor="t", now=clock.now)
        remote = venues.create_venue({"name": REMOTE, "kind": "remote", "site_id": "st"}, actor="t", now=clock.now)
    with booked_ahead(clock):  # a meeting with a remote point is booked 3 working days ahead
        meeting = api.meeting(main_venue_id=main.id, remote_venue_ids=[remote.id])
    finance = api.organisation("Sở Tài chính")
    health = api.organisation("Sở Y tế")
    inv_finance = api.invitation(meeting["id"], finance["id"])
    inv_health = api.invitation(meeting["id"], health["id"])
    people = {}
    for invitation, name, email in [(inv_finance, "Nguyễn Văn An", "an@example.vn"),
                                    (inv_finance, "Trần Thị Bình", "binh@example.vn"),
                                    (inv_health, "Lê Minh Chi", "chi@example.vn")]:
        response = api.register(invitation, name=name, email=email)
        assert response.status_code == 201, response.get_json()
        people[name] = response.get_json()["id"]
    api.gate("g1", "hq")
    api.gate("r1", "st")
    return {"meeting": meeting["id"], "people": people, "invitations": [inv_finance, inv_health]}


def checkin(world: dict[str, Any], name: str, gate: str, at: Any, *, allowed: bool = True,
            outcome: str = "entered") -> None:
    """Store a check-in as central's ingest does."""
    payload = payloads.CheckIn(
        id=uuid.uuid4(), gate_id=gate, site_id="hq" if gate == "g1" else "st", direction="in", scanned_at=at,
        allowed=allowed, reason=Reason.OK if allowed else Reason.REVOKED, outcome=outcome,
        meeting_id=world["meeting"], delegate_id=world["people"][name],
    )
    with database.connection_context():
        assert store_checkin(payload, gate, at).status == "stored"


def dashboard_url(world: dict[str, Any], suffix: str = "") -> str:
    return f"/meetings/{world['meeting']}/truc-tiep{suffix}"


def as_user(client: FlaskClient, username: str) -> FlaskClient:
    response = login(client, username)
    assert response.status_code == 302
    return client


def test_roles(app: Flask, client: FlaskClient, world: dict[str, Any]) -> None:
    assert client.get(dashboard_url(world)).status_code == 302  # to the login page
    guard = as_user(app.test_client(), "baove")
    assert guard.get(dashboard_url(world)).status_code == 403
    assert guard.get(dashboard_url(world, "/trang-thai.json")).status_code == 403
    for username in ("chuyenvien", "lanhdao", "admin"):
        page = as_user(app.test_client(), username).get(dashboard_url(world))
        assert page.status_code == 200, username
        assert "Điểm danh trực tiếp" in page.text
    wall = as_user(app.test_client(), "chuyenvien").get(dashboard_url(world) + "?man-hinh-lon=1").text
    assert '<body class="wall">' in wall and "Đăng xuất" not in wall  # no navigation on the wall display


def test_counts_per_organisation_and_venue_and_late(client: FlaskClient, world: dict[str, Any]) -> None:
    # The remote point's gate r1 (site st) gets the meeting and its delegates in its snapshot and admits them, so a
    # check-in from r1 is one a real gate produces (tests/e2e/test_remote_points.py scans one there); it counts at
    # the remote point.
    with database.connection_context():
        remote_gate = build_snapshot(Gate.get(Gate.gate_id == "r1"), START)
    assert [(m.id, m.gate_sites) for m in remote_gate.meetings] == [(world["meeting"], ("hq", "st"))]
    assert {d.name for d in remote_gate.delegates} == set(world["people"])
    checkin(world, "Nguyễn Văn An", "g1", START - timedelta(minutes=10))
    checkin(world, "Nguyễn Văn An", "g1", START + timedelta(minutes=30))  # re-entry: counted once
    checkin(world, "Lê Minh Chi", "r1", START + timedelta(minutes=7))  # late, at the remote point
    checkin(world, "Trần Thị Bình", "g1", START, allowed=False, outcome="refused")  # refused: not present
    as_user(client, "lanhdao")
    state = client.get(dashboard_url(world, "/trang-thai.json")).get_json()
    assert (state["present"], state["expected"]) == (2, 3)
    assert state["by_organisation"] == [
        {"organisation": "Sở Tài chính", "expected": 2, "present": 1},
        {"organisation": "Sở Y tế", "expected": 1, "present": 1},
    ]
    assert state["by_venue"] == [{"venue": MAIN, "present": 1}, {"venue": REMOTE, "present": 1}]
    late = [p["name"] for p in state["people"] if p["late"]]
    assert late == ["Lê Minh Chi"]
    assert [a["name"] for a in state["arrivals"]] == ["Lê Minh Chi", "Nguyễn Văn An", "Nguyễn Văn An"]
    assert {g["gate_id"] for g in state["gates"]} == {"g1", "r1"}
    page = client.get(dashboard_url(world)).text
    assert '<span class="dash-big" id="dash-present">2</span> / <span id="dash-expected">3</span>' in page
    assert "Lê Minh Chi · Sở Y tế" in page


def test_gate_state_online_behind_and_emergency(client: FlaskClient, world: dict[str, Any], clock: Clock) -> None:
    from central.gates.checkins import record_heartbeat

    with database.connection_context():
        current = Change.select().count()
        heartbeat = payloads.Heartbeat(gate_id="g1", sent_at=clock.now, cache_seq=current, outbox_pending=0,
                                       emergency=True, software_version="vaora-gate 1.4", mode="lockdown")
        assert record_heartbeat(heartbeat, "g1", clock.now) == Reason.OK
        old = payloads.Heartbeat(gate_id="r1", sent_at=clock.now, cache_seq=max(0, current - 2), outbox_pending=3,
                                 software_version="vaora-gate 1.3")
        assert record_heartbeat(old, "r1", clock.now - timedelta(minutes=5)) == Reason.OK
    as_user(client, "chuyenvien")
    gates = {g["gate_id"]: g for g in client.get(dashboard_url(world, "/trang-thai.json")).get_json()["gates"]}
    assert gates["g1"]["online"] and gates["g1"]["emergency"] and gates["g1"]["cache"] == "current"
    assert gates["g1"]["mode"] == "lockdown"
    assert not gates["r1"]["online"]  # last heard five minutes ago
    assert gates["r1"]["cache"] == "behind" and gates["r1"]["behind_by"] == 2
    page = client.get(dashboard_url(world)).text
    assert "KHẨN CẤP" in page and "Mất kết nối" in page and "Khóa cổng" in page


def test_substitute_is_shown(app: Flask, client: FlaskClient, world: dict[str, Any], clock: Clock) -> None:
    from central.registration import services as registration
    from central.web import ctx

    with app.app_context(), database.connection_context():
        invitation = Invitation.get(Invitation.number == world["invitations"][0]["number"])
        context = ctx()
        deps = registration.Deps(signing_key=context.signing_key, mail_sender=context.mail_sender,
                                 mail_from=context.config.mail_from, entry_opens_before=context.entry_opens_before)
        new = registration.replace_delegate(invitation, world["people"]["Trần Thị Bình"],
                                            {"name": "Phạm Quốc Dũng", "email": "dung@example.vn"}, clock.now, deps)
    as_user(client, "chuyenvien")
    state = client.get(dashboard_url(world, "/trang-thai.json")).get_json()
    subs = {p["name"]: p["substitute_for"] for p in state["people"] if p["substitute_for"]}
    assert subs == {"Phạm Quốc Dũng": "Trần Thị Bình"}
    assert state["expected"] == 3  # the replaced person's code is revoked: not expected any more
    assert next(p for p in state["people"] if p["delegate_id"] == new.id)["active"]
    assert "Phạm Quốc Dũng · Sở Tài chính — thay cho Trần Thị Bình" in client.get(dashboard_url(world)).text


def test_manual_mark_requires_a_reason_and_is_audited(app: Flask, client: FlaskClient, world: dict[str, Any],
                                                      clock: Clock) -> None:
    binh = world["people"]["Trần Thị Bình"]
    clock.now = START + timedelta(minutes=3)  # (before logging in: a session idle by the app's clock ends)
    as_user(client, "lanhdao")  # an approver may watch, not mark
    token = csrf(client.get(dashboard_url(world)).text)
    refused = client.post(dashboard_url(world, "/co-mat"), data={"delegate_id": binh, "reason": "x",
                                                                  "csrf_token": token})
    assert refused.status_code == 403

    client = as_user(app.test_client(), "chuyenvien")
    token = csrf(client.get(dashboard_url(world)).text)
    json_headers = {"Accept": "application/json"}
    no_reason = client.post(dashboard_url(world, "/co-mat"), headers=json_headers,
                            data={"delegate_id": binh, "reason": "   ", "csrf_token": token})
    assert no_reason.status_code == 400
    assert "reason" in no_reason.get_json()["fields"]
    no_csrf = client.post(dashboard_url(world, "/co-mat"), data={"delegate_id": binh, "reason": "Quên mã"})
    assert no_csrf.status_code == 400
    with database.connection_context():
        assert CheckIn.select().count() == 0
        assert not AuditEntry.select().where(AuditEntry.action == "attendance.mark_present").exists()

    done = client.post(dashboard_url(world, "/co-mat"), headers=json_headers,
                       data={"delegate_id": binh, "reason": "Quên điện thoại, đã đối chiếu CCCD", "csrf_token": token})
    assert done.status_code == 200, done.get_json()
    again = client.post(dashboard_url(world, "/co-mat"), headers=json_headers,
                        data={"delegate_id": binh, "reason": "lần hai", "csrf_token": token})
    assert again.status_code == 409 and again.get_json()["reason"] == "already_inside"

    with database.connection_context():
        entry = AuditEntry.get(AuditEntry.action == "attendance.mark_present")
        assert entry.actor == "chuyenvien" and entry.target == f"delegate:{binh}"
        assert json.loads(entry.details)["reason"] == "Quên điện thoại, đã đối chiếu CCCD"
        row = CheckIn.get()
        assert row.manual and row.gate_id is None and row.operator == "chuyenvien"

        from central.attendance.exports import build_attendance_list, to_csv
        from central.attendance.stats import meeting_statistics

        meeting = Meeting.get_by_id(world["meeting"])
        rows = {r.name: r for r in build_attendance_list(meeting).rows}
        assert rows["Trần Thị Bình"].arrived_at == clock.now and rows["Trần Thị Bình"].late
        assert "Trần Thị Bình" in to_csv(build_attendance_list(meeting)).decode("utf-8")
        assert meeting_statistics(meeting).manual_entries == 1

    state = client.get(dashboard_url(world, "/trang-thai.json")).get_json()
    assert state["present"] == 1
    assert state["arrivals"][0]["manual"] and state["arrivals"][0]["note"] == "Quên điện thoại, đã đối chiếu CCCD"
    assert state["by_venue"][0] == {"venue": MAIN, "present": 1}  # a manual mark counts at the main hall


def test_walkins_awaiting_approval(app: Flask, client: FlaskClient, world: dict[str, Any], clock: Clock) -> None:
    from central.desk import walkins
    from central.desk.cccd import parse_cccd

    clock.now = START - timedelta(minutes=20)
    with database.connection_context():
        meeting = Meeting.get_by_id(world["meeting"])
        invitation = Invitation.get(Invitation.number == world["invitations"][1]["number"])
        people = []
        for number, name in [("001099012345", "Hoàng Thị Hạnh"), ("001099054321", "Đỗ Văn Khoa")]:
            record = parse_cccd(f"{number}||{name}|17051990|Nữ|Số 1 Trần Phú, Hà Nội|01042021")
            people.append(walkins.register(meeting, invitation, record, "baove", secret="s3cret", now=clock.now))
    as_user(client, "lanhdao")
    page = client.get(dashboard_url(world))
    assert "Hoàng Thị Hạnh" in page.text and "********2345" in page.text and "001099012345" not in page.text
    token = csrf(page.text)
    approve = client.post(dashboard_url(world, f"/khach/{people[0].id}/duyet"), headers={"Accept": "application/json"},
                          data={"csrf_token": token})
    assert approve.status_code == 200, approve.get_json()
    no_note = client.post(dashboard_url(world, f"/khach/{people[1].id}/tu-choi"),
                          headers={"Accept": "application/json"}, data={"csrf_token": token, "note": ""})
    assert no_note.status_code == 400
    reject = client.post(dashboard_url(world, f"/khach/{people[1].id}/tu-choi"), headers={"Accept": "application/json"},
                         data={"csrf_token": token, "note": "Không có tên trong danh sách"})
    assert reject.status_code == 200
    assert client.get(dashboard_url(world, "/khach.json")).get_json() == []
    other = client.post(f"/meetings/{world['meeting'] + 99}/truc-tiep/khach/{people[0].id}/duyet",
                        data={"csrf_token": token})
    assert other.status_code == 404
    with database.connection_context():
        assert walkins.get(people[0].id).status == "approved" and walkins.get(people[0].id).decided_by == "lanhdao"
        assert walkins.get(people[1].id).status == "rejected"


# --- the event stream ------------------------------------------------------------------------------------------


@pytest.fixture
def central_config(central_config: dict[str, Any]) -> dict[str, Any]:
    """Served over plain HTTP below: central's public URL says so (else its session cookie is ``Secure``)."""
    return {**central_config, "VAORA_PUBLIC_URL": "http://127.0.0.1"}


@pytest.fixture
def served(app: Flask, world: dict[str, Any]) -> Iterator[str]:
    with ThreadedServer(app) as server:
        yield server.url
    hub = app.extensions.get("vaora_live")
    if hub is not None:
        hub.stop()


def staff_session(url: str, username: str) -> requests.Session:
    session = requests.Session()
    token = csrf(session.get(f"{url}/login", timeout=5).text)
    session.post(f"{url}/login", data={"username": username, "password": PASSWORD, "csrf_token": token}, timeout=5)
    return session


class EventReader:
    """Reads server-sent events from a streaming response in a thread."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.events: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event: dict[str, Any] = {}
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line == "":
                    if event:
                        with self.changed:
                            self.events.append(event)
                            self.changed.notify_all()
                    event = {}
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(": ")
                    event[name] = json.loads(value) if name == "data" else value
        except (requests.RequestException, AttributeError):
            return

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        with self.changed:
            found = self.changed.wait_for(lambda: next((e for e in self.events if predicate(e)), None), timeout)
        assert found, f"no matching event in {self.events}"
        return found

    def close(self) -> None:
        # Closing blocks until the reader's pending read returns (the next keepalive): do it aside.
        threading.Thread(target=self.response.close, daemon=True).start()


def open_stream(session: requests.Session, url: str, **headers: str) -> EventReader:
    response = session.get(url, stream=True, timeout=10, headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return EventReader(response)


def stream_url(served: str, world: dict[str, Any], after: int | None = None) -> str:
    """The dashboard's event stream, with a 1 s keepalive (a closed test client is noticed quickly)."""
    return f"{served}{dashboard_url(world, '/su-kien')}?keepalive=1" + (f"&after={after}" if after is not None else "")


def _arrived(name: str) -> Any:
    return lambda e: e.get("event") == CHECKINS and any(a["name"] == name for a in e["data"])


def test_stream_emits_a_checkin_written_by_another_connection(served: str, world: dict[str, Any]) -> None:
    session = staff_session(served, "chuyenvien")
    state = session.get(f"{served}{dashboard_url(world, '/trang-thai.json')}", timeout=5).json()
    stream = open_stream(session, stream_url(served, world, state['cursor']))
    try:
        stream.wait_for(lambda e: e.get("event") == "hello")
        writer = threading.Thread(target=checkin, args=(world, "Lê Minh Chi", "r1", START))  # its own connection
        writer.start()
        writer.join()
        event = stream.wait_for(_arrived("Lê Minh Chi"), timeout=3)
        arrival = event["data"][0]
        assert arrival["organisation"] == "Sở Y tế" and arrival["gate_id"] == "r1" and arrival["entry"]
        first_id = event["id"]

        checkin(world, "Nguyễn Văn An", "g1", START)
        stream.wait_for(_arrived("Nguyễn Văn An"))
        # A reconnecting browser sends Last-Event-ID: what came after it is replayed first.
        resumed = open_stream(session, stream_url(served, world), **{"Last-Event-ID": first_id})
        try:
            resumed.wait_for(_arrived("Nguyễn Văn An"))
            assert not any(_arrived("Lê Minh Chi")(e) for e in resumed.events)
        finally:
            resumed.close()
        stale = open_stream(session, stream_url(served, world), **{"Last-Event-ID": "gone-1"})
        try:
            stale.wait_for(lambda e: e.get("event") == "reset")
        finally:
            stale.close()
    finally:
        stream.close()


def test_stream_backfills_checkins_since_the_page_state(served: str, world: dict[str, Any]) -> None:
    session = staff_session(served, "chuyenvien")
    watcher = open_stream(session, stream_url(served, world))  # keeps the hub polling
    try:
        watcher.wait_for(lambda e: e.get("event") == "hello")
        cursor = session.get(f"{served}{dashboard_url(world, '/trang-thai.json')}", timeout=5).json()["cursor"]
        checkin(world, "Trần Thị Bình", "g1", START)  # stored after the page was built, before its stream opened
        watcher.wait_for(_arrived("Trần Thị Bình"))
        late_stream = open_stream(session, stream_url(served, world, cursor))
        try:
            late_stream.wait_for(_arrived("Trần Thị Bình"))
        finally:
            late_stream.close()
    finally:
        watcher.close()


def test_guard_cannot_open_the_stream(served: str, world: dict[str, Any]) -> None:
    session = staff_session(served, "baove")
    response = session.get(stream_url(served, world), timeout=5, allow_redirects=False)
    assert response.status_code == 403


def test_slow_client_is_dropped_not_the_others() -> None:
    hub = LiveHub(queue_size=3)
    hub.ensure_started = lambda: None  # type: ignore[method-assign] - no poller needed to test the fan-out
    hub.last_checkin_id = 0  # (no database here)
    slow = hub.subscribe(1, frozenset({CHECKINS}))
    fast = hub.subscribe(1, frozenset({CHECKINS}))
    other_meeting = hub.subscribe(2, frozenset({CHECKINS}))
    for n in range(5):
        hub.publish(CHECKINS, [{"n": n}], 1)
        fast.queue.get_nowait()
    assert slow.dropped and not fast.dropped and not other_meeting.dropped
    assert hub.subscriber_count == 2 and hub.dropped_total == 1
    assert other_meeting.queue.empty()  # events of meeting 1 are not sent to meeting 2's dashboard


def test_after_an_idle_spell_a_reconnect_reloads_the_state(db: None) -> None:
    hub = LiveHub()
    hub.ensure_started = lambda: None  # type: ignore[method-assign] - the test drives poll_once itself
    first = hub.subscribe(1, frozenset({CHECKINS}))
    event = hub.publish(CHECKINS, [{"n": 1}], 1)
    later = hub.publish(CHECKINS, [{"n": 2}], 1)
    resumed = hub.subscribe(1, frozenset({CHECKINS}), last_event_id=hub.event_id(event))
    assert resumed.queue.get_nowait() == later  # replayed from the ring
    last_seen = hub.event_id(later)  # what the browser holds as Last-Event-ID
    hub.unsubscribe(first)
    hub.unsubscribe(resumed)
    hub.poll_once()  # nobody connected: the hub idles and stops recording
    back = hub.subscribe(1, frozenset({CHECKINS}), last_event_id=last_seen)
    assert back.queue.get_nowait().kind == "reset"  # events may have been missed: the page reloads its state


def test_meeting_page_links_the_dashboard_and_the_menu_links_the_fleet(app: Flask, world: dict[str, Any]) -> None:
    organiser = as_user(app.test_client(), "chuyenvien")
    meeting_page = organiser.get(dashboard_url(world).rsplit("/", 1)[0]).text
    assert f'href="{dashboard_url(world)}"' in meeting_page
    assert 'href="/cong/"' in meeting_page
    guard_page = as_user(app.test_client(), "baove").get("/", follow_redirects=True).text
    assert 'href="/cong/"' not in guard_page


def test_a_three_day_meeting_counts_each_day_and_can_be_marked_again_on_day_2(
        app: Flask, client: FlaskClient, world: dict[str, Any], clock: Clock) -> None:
    day = timedelta(days=1)
    with database.connection_context():
        Meeting.update(ends_at=START + 2 * day + timedelta(hours=9)).where(Meeting.id == world["meeting"]).execute()
    checkin(world, "Nguyễn Văn An", "g1", START - timedelta(minutes=10))
    checkin(world, "Lê Minh Chi", "r1", START + timedelta(minutes=5))
    checkin(world, "Nguyễn Văn An", "g1", START + day - timedelta(minutes=30))  # 07:30 on day 2
    checkin(world, "Nguyễn Văn An", "g1", START + day + timedelta(hours=4))  # back after lunch: still day 2
    clock.now = START + day + timedelta(hours=1)
    as_user(client, "chuyenvien")
    state = client.get(dashboard_url(world, "/trang-thai.json")).get_json()
    assert state["today"] == 2
    assert [(d["day"], d["present"]) for d in state["days"]] == [(1, 2), (2, 1), (3, 0)]
    people = {p["name"]: p["days_present"] for p in state["people"]}
    assert people == {"Nguyễn Văn An": [True, True, False], "Lê Minh Chi": [True, False, False],
                      "Trần Thị Bình": [False, False, False]}
    assert {p["name"]: p["present_today"] for p in state["people"]} == {
        "Nguyễn Văn An": True, "Lê Minh Chi": False, "Trần Thị Bình": False}
    page = client.get(dashboard_url(world)).text
    assert 'id="dash-days"' in page and "Ngày 2" in page
    may_mark = page.split('id="mark-delegate"')[1].split("</select>")[0]
    assert "Lê Minh Chi" in may_mark and "Nguyễn Văn An" not in may_mark, "who is absent today may be marked"

    token = csrf(page)
    json_headers = {"Accept": "application/json"}
    chi = world["people"]["Lê Minh Chi"]
    marked = client.post(dashboard_url(world, "/co-mat"), headers=json_headers,
                         data={"delegate_id": chi, "reason": "Quên thẻ ngày 2", "csrf_token": token})
    assert marked.status_code == 200, marked.get_json()  # present on day 1 does not make them present on day 2
    again = client.post(dashboard_url(world, "/co-mat"), headers=json_headers,
                        data={"delegate_id": chi, "reason": "lần hai", "csrf_token": token})
    assert again.status_code == 409 and again.get_json()["reason"] == "already_inside"
    state = client.get(dashboard_url(world, "/trang-thai.json")).get_json()
    assert [d["present"] for d in state["days"]] == [2, 2, 0]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_days_panel_follows_a_day_2_arrival_live_in_the_browser(
        served: str, world: dict[str, Any], clock: Clock, browser: Any) -> None:
    from playwright.sync_api import expect

    day = timedelta(days=1)
    with database.connection_context():
        Meeting.update(ends_at=START + 2 * day + timedelta(hours=9)).where(Meeting.id == world["meeting"]).execute()
    checkin(world, "Nguyễn Văn An", "g1", START - timedelta(minutes=10))
    clock.now = START + day + timedelta(hours=1)  # 09:00 on day 2
    page = browser.new_context(locale="vi-VN").new_page()
    page.goto(f"{served}/login")
    page.get_by_label("Tên đăng nhập").fill("chuyenvien")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(lambda u: not u.endswith("/login"))
    page.goto(f"{served}{dashboard_url(world)}")
    page.wait_for_selector("#dash-live[data-state='live']")
    rows = page.locator("#dash-days tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text("Hôm nay")
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("1")
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("0")
    assert "Nguyễn Văn An" in page.text_content("#mark-delegate"), "present on day 1, absent today: may be marked"

    checkin(world, "Nguyễn Văn An", "g1", clock.now)  # written by another connection, as ingest does
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("1")
    expect(page.locator("#mark-delegate")).not_to_contain_text("Nguyễn Văn An")
    expect(page.locator("#dash-present")).to_have_text("1")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_wall_display_fits_1920x1080_and_names_gates(
        served: str, world: dict[str, Any], clock: Clock, browser: Any) -> None:
    """Totals, chart, arrivals and gates are all on a 1920x1080 screen without scrolling; arrivals and the gates
    panel name the gate ("Cổng chính"), not its id."""
    from playwright.sync_api import expect

    for minutes, name in ((-12, "Nguyễn Văn An"), (-8, "Trần Thị Bình"), (-3, "Lê Minh Chi")):
        checkin(world, name, "g1" if minutes < -5 else "r1", START + timedelta(minutes=minutes))
    clock.now = START + timedelta(minutes=5)
    context = browser.new_context(locale="vi-VN", viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    _login(page, served, "chuyenvien")
    page.wait_for_url(lambda u: not u.endswith("/login"))
    page.goto(f"{served}{dashboard_url(world)}?man-hinh-lon=1")
    page.wait_for_selector("#dash-live[data-state='live']")
    expect(page.locator("#dash-arrivals li")).to_have_count(3)
    expect(page.locator("#dash-arrivals li").first).to_contain_text("Cổng chính")
    assert "g1" not in page.inner_text("#dash-arrivals") and "r1" not in page.inner_text("#dash-arrivals")
    assert page.evaluate("window.scrollY") == 0
    for selector in ("#dash-present", "#dash-expected", "#dash-chart svg", "#arrivals-h", "#dash-arrivals li",
                     "#gates-h", "#dash-gates tr[data-gate='g1']", "#dash-gates tr[data-gate='r1']"):
        box = page.locator(selector).first.bounding_box()
        assert box is not None, selector
        assert box["y"] >= 0 and box["y"] + box["height"] <= 1080, f"{selector} is below the fold: {box}"
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1920, f"{selector} is off to the side: {box}"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1920
    chart = page.locator("#dash-chart svg").bounding_box()
    assert chart is not None and chart["height"] >= 200, "the chart stays readable from the back of the hall"
    if os.environ.get("VAORA_SCREENSHOTS") == "1":
        page.screenshot(path=str(Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "central-wall.png"))
    context.close()
