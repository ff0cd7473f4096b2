"""Gate alarms: a forced door (a ``door_forced`` check-in) and the emergency input (a gate's status or heartbeat)
raise one alarm each at ingest, pushed to the live pages by the hub; a guard, an organiser or an administrator
acknowledges it (CSRF, audited), it leaves the active panel and stays in the history; an approver sees it on the
dashboard but may not acknowledge it, an anonymous visitor is sent to the login page."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from central.attendance.live import ALARMS, CONFLICTS, LiveHub
from central.core.db import database
from central.core.models import AuditEntry
from central.gates import alarms
from central.gates.checkins import record_heartbeat, record_status, store_checkins
from central.gates.models import GateAlarm
from protocols import payloads
from protocols.reasons import Reason

from .conftest import START, Clock
from .staff import csrf
from .test_dashboard import as_user, dashboard_url
from .test_dashboard import world as world  # meeting at hq with a remote point at st; gates g1 (hq), r1 (st)

JSON = {"Accept": "application/json"}


def forced(gate: str, at: datetime, checkin_id: uuid.UUID | None = None) -> payloads.CheckIn:
    """A turn of gate ``gate``'s turnstile nobody was let through, as the gate records it."""
    return payloads.CheckIn(id=checkin_id or uuid.uuid4(), gate_id=gate, site_id="hq", direction="in", scanned_at=at,
                            allowed=False, reason=Reason.DOOR_FORCED, outcome="entered", meeting_id=None,
                            delegate_id=None, completed_at=at)


def store(*checkins: payloads.CheckIn) -> list[str]:
    with database.connection_context():
        return [ack.status for ack in store_checkins([(c, c.gate_id) for c in checkins], checkins[-1].scanned_at)]


def heartbeat(gate: str, at: datetime, emergency: bool) -> None:
    beat = payloads.Heartbeat(gate_id=gate, sent_at=at, cache_seq=0, outbox_pending=0, software_version="t",
                              emergency=emergency)
    with database.connection_context():
        assert record_heartbeat(beat, gate, at) == Reason.OK


def active() -> list[tuple[str, str]]:
    with database.connection_context():
        return [(a["kind"], a["gate_id"]) for a in alarms.active_alarms()]


def acknowledge(client: FlaskClient, alarm_id: int, note: str = "", page: str = "/cong/canh-bao") -> Any:
    token = csrf(client.get(page).text)
    return client.post(f"/cong/canh-bao/{alarm_id}/xac-nhan", data={"note": note, "csrf_token": token},
                       headers=JSON)


def test_a_forced_door_raises_one_alarm_however_often_it_is_delivered(world: dict[str, Any]) -> None:
    turn = forced("g1", START)
    assert store(turn) == ["stored"]
    assert store(turn) == ["duplicate"]
    assert active() == [("door_forced", "g1")]
    with database.connection_context():
        assert alarms.record_forced_doors([turn.id], START) == 0  # the same check-in again: nothing new
        assert GateAlarm.select().count() == 1


def test_the_emergency_input_opens_one_alarm_until_released(world: dict[str, Any]) -> None:
    heartbeat("r1", START, emergency=True)
    heartbeat("r1", START + timedelta(seconds=15), emergency=True)  # still active: the same alarm
    assert active() == [("emergency", "r1")]
    status = payloads.GateStatus(gate_id="r1", state="online", emergency=False)
    with database.connection_context():
        assert record_status(status, "r1", START + timedelta(seconds=20)) == Reason.OK
        (alarm,) = alarms.active_alarms()
    assert alarm["cleared_at"] is not None, "released: shown as ended, active until acknowledged"
    offline = payloads.GateStatus(gate_id="r1", state="offline", emergency=False)
    with database.connection_context():
        record_status(payloads.GateStatus(gate_id="r1", state="online", emergency=True), "r1", START + timedelta(1))
        record_status(offline, "r1", START + timedelta(days=1, seconds=1))  # the last will cannot know the input
        assert [a["cleared_at"] is None for a in alarms.active_alarms()] == [True, False]


def test_roles_csrf_audit_and_history_of_acknowledging(app: Flask, client: FlaskClient, world: dict[str, Any],
                                                       clock: Clock) -> None:
    clock.now = START
    store(forced("g1", START), forced("g1", START + timedelta(seconds=1)), forced("g1", START + timedelta(seconds=2)))
    with database.connection_context():
        ids = sorted(a["id"] for a in alarms.active_alarms())

    anonymous = app.test_client()
    assert anonymous.get("/cong/canh-bao").status_code == 302
    assert anonymous.post(f"/cong/canh-bao/{ids[0]}/xac-nhan").status_code in (302, 400)
    approver = as_user(app.test_client(), "lanhdao")
    assert approver.get("/cong/canh-bao").status_code == 403
    dashboard = approver.get(dashboard_url(world)).text
    assert "Cổng bị vượt trái phép" in dashboard and "alarm-ack" not in dashboard  # sees it, no button
    alarm_list = dashboard.split('id="alarm-list"', 1)[1].split("</ul>", 1)[0]
    assert '<span class="gate">Cổng chính</span>' in alarm_list and "(g1)" not in alarm_list, "named, not by id"
    refused = approver.post(f"/cong/canh-bao/{ids[0]}/xac-nhan", headers=JSON,
                            data={"csrf_token": csrf(dashboard)})
    assert refused.status_code == 403
    assert len(active()) == 3

    guard = as_user(app.test_client(), "baove")
    assert guard.post(f"/cong/canh-bao/{ids[0]}/xac-nhan", headers=JSON).status_code == 400  # no CSRF token
    assert 'href="/cong/canh-bao"' in guard.get("/ban-tiep-don/").text  # the guard's menu leads there
    answer = acknowledge(guard, ids[0], "Đã kiểm tra, nhân viên vệ sinh đẩy nhầm")
    assert answer.status_code == 200 and answer.get_json()["ok"]
    assert acknowledge(guard, ids[0]).status_code == 409  # already acknowledged
    assert acknowledge(guard, 999999).status_code == 404
    assert acknowledge(guard, ids[1], "x" * 201).status_code == 400
    organiser = as_user(app.test_client(), "chuyenvien")
    assert acknowledge(organiser, ids[1], page="/cong/").status_code == 200  # from the fleet page
    admin = as_user(app.test_client(), "admin")
    assert acknowledge(admin, ids[2], page=dashboard_url(world)).status_code == 200  # from the dashboard
    assert active() == []

    page = guard.get("/cong/canh-bao").text
    assert "Không có cảnh báo." in page
    history = page.split('id="alarm-history"', 1)[1].split("</tbody>", 1)[0]
    assert history.count("<tr") == 3 and "nhân viên vệ sinh" in history
    assert "Baove" in history and "baove" not in history, "named by full name, not by username"
    with database.connection_context():
        entries = list(AuditEntry.select().where(AuditEntry.action == "gate.alarm_acknowledge")
                       .order_by(AuditEntry.id))
    assert [(e.actor, e.target) for e in entries] == [("baove", f"gate_alarm:{ids[0]}"),
                                                      ("chuyenvien", f"gate_alarm:{ids[1]}"),
                                                      ("admin", f"gate_alarm:{ids[2]}")]
    assert json.loads(entries[0].details)["gate"] == "g1"


def test_the_dashboard_shows_its_sites_alarms_and_the_fleet_page_every_gate(
        app: Flask, client: FlaskClient, world: dict[str, Any]) -> None:
    from .conftest import Api

    Api(client).gate("x1", "xa")
    store(forced("x1", START))  # a gate at a site of no venue of the meeting
    heartbeat("r1", START, emergency=True)  # the remote point
    organiser = as_user(client, "chuyenvien")
    state = organiser.get(dashboard_url(world, "/trang-thai.json")).get_json()
    assert [(a["kind"], a["gate_id"]) for a in state["alarms"]] == [("emergency", "r1")]
    fleet = organiser.get("/cong/trang-thai.json").get_json()
    assert sorted((a["kind"], a["gate_id"]) for a in fleet["alarms"]) == [("door_forced", "x1"), ("emergency", "r1")]
    page = organiser.get("/cong/").text
    assert page.count('class="alarm alarm-') == 2 and "Mở khẩn cấp" in page


def test_the_live_hub_pushes_raised_and_acknowledged_alarms_and_flagged_conflicts(
        app: Flask, world: dict[str, Any]) -> None:
    hub = LiveHub()
    hub.ensure_started = lambda: None  # type: ignore[method-assign] - the test drives poll_once itself
    with app.app_context(), database.connection_context():
        sub = hub.subscribe(world["meeting"], frozenset({ALARMS, CONFLICTS}))
        assert sub.queue.get_nowait().data == []  # where alarms stand when the page connects
        hub.poll_once()
        store(forced("g1", START))
        hub.poll_once()
        event = sub.queue.get_nowait()
        assert event.kind == ALARMS and [a["kind"] for a in event.data] == ["door_forced"]
        alarms.acknowledge(event.data[0]["id"], {}, actor="baove", now=START)
        hub.poll_once()
        assert sub.queue.get_nowait().data == []
        entry = payloads.CheckIn(id=uuid.uuid4(), gate_id="g1", site_id="hq", direction="in", scanned_at=START,
                                 allowed=True, reason=Reason.OK, outcome="entered", meeting_id=world["meeting"],
                                 delegate_id=world["people"]["Nguyễn Văn An"])
        store(entry, entry.model_copy(update={"id": uuid.uuid4(), "scanned_at": START + timedelta(seconds=1)}))
        hub.poll_once()
        event = sub.queue.get_nowait()
        assert (event.kind, event.data) == (CONFLICTS, {"meeting_id": world["meeting"], "new": 1})


def test_without_javascript_the_acknowledge_form_redirects_back_with_a_message(
        app: Flask, world: dict[str, Any], clock: Clock) -> None:
    clock.now = START
    store(forced("g1", START))
    with database.connection_context():
        (alarm,) = alarms.active_alarms()
    guard = as_user(app.test_client(), "baove")
    page = guard.get("/cong/canh-bao").text
    assert f'action="/cong/canh-bao/{alarm["id"]}/xac-nhan"' in page  # a plain form: works without JavaScript
    answer = guard.post(f"/cong/canh-bao/{alarm['id']}/xac-nhan", data={"csrf_token": csrf(page), "note": "ok"},
                        headers={"Referer": "http://localhost/cong/canh-bao"})
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/cong/canh-bao")
    assert "Đã xác nhận cảnh báo." in guard.get("/cong/canh-bao").text
    assert active() == []
