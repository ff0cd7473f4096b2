"""The guard desk pages as a guard uses them: roles, CSRF, scans good and bad, registering, admitting, the
one-day code, polling for an organiser's decision, opening a gate that does not answer, and the meeting form's
walk-in policy."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.core.models import AuditEntry
from central.desk import walkins
from central.desk.models import Walkin
from central.meetings.models import Meeting
from central.registration.models import Delegate
from devtools.broker import LocalBroker

from .conftest import START, Api, Clock
from .staff import csrf, login, make_users, post_form

ID_NUMBER = "001085012345"
CARD = f"{ID_NUMBER}|123456789|Nguyễn Thị Ánh Tuyết|15081985|Nữ|Số 1 Đinh Tiên Hoàng, Hoàn Kiếm, Hà Nội|20042021"
DESK = "/ban-tiep-don/"


@pytest.fixture
def desk(app: Flask, api: Api, clock: Clock) -> dict[str, Any]:
    """Staff accounts, a meeting today (08:00-11:00 in Hà Nội, now 08:30) and one approved invitation."""
    clock.now = START - timedelta(days=3)
    make_users(clock())
    meeting = api.meeting()
    invitation = api.invitation(meeting["id"], api.organisation("Sở Thông tin và Truyền thông")["id"])
    clock.now = START + timedelta(minutes=30)
    return {"meeting": meeting["id"], "invitation": invitation["number"]}


def token(client: FlaskClient) -> str:
    return csrf(client.get(DESK).text)


def parse(client: FlaskClient, body: Any, with_token: bool = True) -> Any:
    headers = {"X-CSRFToken": token(client)} if with_token else {}
    return client.post(f"{DESK}quet", json=body, headers=headers)


def register(client: FlaskClient, desk: dict[str, Any], card: str = CARD, invitation: str | None = None) -> Any:
    data = {"scan": card, "meeting_id": desk["meeting"], "invitation": invitation or desk["invitation"]}
    return post_form(client, DESK, DESK, data)


def walkin_rows() -> list[Walkin]:
    with database.connection_context():
        return list(Walkin.select().order_by(Walkin.id))


def test_only_guards_and_administrators_use_the_desk(client: FlaskClient, desk: dict[str, Any]) -> None:
    response = client.get(DESK)
    assert response.status_code == 302 and response.location.startswith("/login")
    for username, status in (("chuyenvien", 403), ("lanhdao", 403), ("baove", 200), ("admin", 200)):
        login(client, username)
        assert client.get(DESK).status_code == status, username
        assert client.get(f"{DESK}khach.json").status_code == status, username
        client.post("/logout", data={"csrf_token": csrf(client.get("/", follow_redirects=True).text)})


def test_scan_parses_on_the_server_and_bad_scans_give_the_reason(client: FlaskClient, desk: dict[str, Any]) -> None:
    login(client, "baove")
    page = client.get(DESK).text
    assert 'id="scan"' in page and "autofocus" in page
    ok = parse(client, {"text": CARD + "\r\n"})
    assert ok.status_code == 200
    assert ok.get_json() == {"ok": True, "full_name": "Nguyễn Thị Ánh Tuyết", "date_of_birth": "15/08/1985",
                             "sex": "Nữ", "id_masked": "********2345"}
    assert ID_NUMBER not in ok.text and "Đinh Tiên Hoàng" not in ok.text

    bad = parse(client, {"text": "00108501234|123456789|Nguyễn Văn A|15081985|Nam||"})
    assert bad.status_code == 422
    assert bad.get_json()["message"] == "Số CCCD phải gồm đúng 12 chữ số"
    assert bad.get_json()["problem"] == "bad_id_number"
    future = parse(client, {"text": "001085012345||Nguyễn Văn A|15082099|Nam||"})
    assert future.status_code == 422 and "tương lai" in future.get_json()["message"]
    assert parse(client, {"nothing": 1}).status_code == 400
    assert parse(client, ["not", "an", "object"]).status_code == 400
    assert parse(client, {"text": CARD}, with_token=False).status_code == 400, "CSRF token required"


def test_register_with_a_bad_scan_changes_nothing(client: FlaskClient, desk: dict[str, Any]) -> None:
    login(client, "baove")
    response = register(client, desk, card="001085012345|x|Nguyễn Văn A|15081985")
    assert response.status_code == 400
    assert "Số CMND cũ phải gồm 9 hoặc 12 chữ số" in response.text
    assert ID_NUMBER not in response.text, "the card text is not echoed back"
    unknown = register(client, desk, invitation="999/TM-UBND")
    assert unknown.status_code == 400 and "Không tìm thấy thư mời" in unknown.text
    assert walkin_rows() == []
    no_token = client.post(DESK, data={"scan": CARD, "meeting_id": desk["meeting"], "invitation": desk["invitation"]})
    assert no_token.status_code == 400
    assert walkin_rows() == []


def test_register_pending_then_approved_shows_up_when_polling(client: FlaskClient, desk: dict[str, Any],
                                                              clock: Clock) -> None:
    login(client, "baove")
    response = register(client, desk, invitation="thong tin va truyen thong")  # by organisation, no accents
    assert response.status_code == 303
    (walkin,) = walkin_rows()
    assert (walkin.status, walkin.created_by, walkin.id_masked) == ("pending", "baove", "********2345")
    page = client.get(DESK).text
    assert "Nguyễn Thị Ánh Tuyết" in page and "Chờ duyệt" in page and ID_NUMBER not in page

    before = client.get(f"{DESK}khach.json").get_json()
    assert [w["status"] for w in before["walkins"]] == ["pending"]
    assert ID_NUMBER not in str(before)
    with database.connection_context():
        walkins.approve(walkin.id, "chuyenvien", "Đồng ý", now=clock())
    after = client.get(f"{DESK}khach.json").get_json()
    assert after["version"] != before["version"]
    assert after["walkins"][0]["status_label"] == "Đã duyệt"
    rows = client.get(f"{DESK}danh-sach").text
    assert f'action="/ban-tiep-don/khach/{walkin.id}/cho-vao"' in rows

    again = register(client, desk)
    assert again.status_code == 409 and "đã được đăng ký" in again.text


def test_admit_shows_the_one_day_code_and_prints_it(client: FlaskClient, desk: dict[str, Any]) -> None:
    with database.connection_context():
        walkins.set_policy(Meeting.get_by_id(desk["meeting"]), "direct", "chuyenvien")
    login(client, "baove")
    assert register(client, desk).status_code == 303
    (walkin,) = walkin_rows()
    assert walkin.status == "approved"
    assert client.get(f"{DESK}khach/{walkin.id}/ma").status_code == 404, "no code before admitting"
    admitted = post_form(client, DESK, f"{DESK}khach/{walkin.id}/cho-vao", {})
    assert admitted.status_code == 303 and admitted.location.endswith(f"/khach/{walkin.id}/ma")
    with database.connection_context():
        delegate = Walkin.get_by_id(walkin.id).delegate
        code = delegate.code
    page = client.get(admitted.location).text
    assert "<svg" in page and "Nguyễn Thị Ánh Tuyết" in page
    assert re.sub(r"\W", "", code) in re.sub(r"\W", "", page), "the short code is printed under the QR"
    assert "11:30 10/03/2025" in page, "valid until the meeting ends plus the grace (Hà Nội time)"
    pdf = client.get(f"{DESK}khach/{walkin.id}/the.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    twice = post_form(client, DESK, f"{DESK}khach/{walkin.id}/cho-vao", {})
    assert twice.status_code == 303, "admitting again just shows the same code"
    with database.connection_context():
        assert Delegate.select().count() == 1


def test_open_gate_reports_a_timeout_when_the_gate_does_not_answer(
    app: Flask, client: FlaskClient, desk: dict[str, Any], api: Api, broker: LocalBroker
) -> None:
    from central.messaging.publish import MqttPublisher

    publisher = MqttPublisher(broker.host, broker.port)
    app.extensions["vaora_publisher"] = publisher
    app.config["DESK_GATE_TIMEOUT"] = 0.5
    api.gate("lobby-1", "hq")
    with database.connection_context():
        walkins.set_policy(Meeting.get_by_id(desk["meeting"]), "direct", "chuyenvien")
    login(client, "baove")
    register(client, desk)
    (walkin,) = walkin_rows()
    page = client.get(DESK).text
    assert 'name="gate_id"' in page and "lobby-1" in page
    try:
        response = client.post(f"{DESK}khach/{walkin.id}/mo-cong", data={"gate_id": "lobby-1",
                               "csrf_token": csrf(page)}, headers={"Accept": "application/json"})
    finally:
        publisher.stop()
    body = response.get_json()
    assert body["result"] == "timeout" and "không trả lời" in body["message"]
    assert body["message"].startswith("Cổng chính không trả lời"), "the gate by its name, not its id"
    assert "lobby-1" not in body["message"]
    wrong = client.post(f"{DESK}khach/{walkin.id}/mo-cong", data={"gate_id": "other", "csrf_token": csrf(page)},
                        headers={"Accept": "application/json"})
    assert wrong.status_code == 400 and wrong.get_json()["result"] == "failed"
    with database.connection_context():
        assert Walkin.get_by_id(walkin.id).status == "admitted", "opening a gate admits first"
        entry = AuditEntry.get(AuditEntry.action == "walkin.open_gate")
        assert entry.actor == "baove" and '"result": "timeout"' in entry.details


def test_the_desk_opens_a_gate_once_per_walkin_admission_and_only_while_the_code_is_valid(
    app: Flask, client: FlaskClient, desk: dict[str, Any], api: Api, broker: LocalBroker, clock: Clock
) -> None:
    from central.gates.models import GateCommand
    from central.messaging.publish import MqttPublisher

    publisher = MqttPublisher(broker.host, broker.port)
    app.extensions["vaora_publisher"] = publisher
    app.config["DESK_GATE_TIMEOUT"] = 0.2
    api.gate("lobby-1", "hq")
    with database.connection_context():
        walkins.set_policy(Meeting.get_by_id(desk["meeting"]), "direct", "chuyenvien")
    login(client, "baove")
    register(client, desk)
    register(client, desk, card=CARD.replace(ID_NUMBER, "001085099999"))
    first, second = walkin_rows()
    url = f"{DESK}khach/{first.id}/mo-cong"
    as_json = {"Accept": "application/json"}
    try:
        opened = client.post(url, data={"gate_id": "lobby-1", "csrf_token": token(client)}, headers=as_json)
        assert opened.status_code == 200 and opened.get_json()["result"] == "timeout"
        again = client.post(url, data={"gate_id": "lobby-1", "csrf_token": token(client)}, headers=as_json)
        assert again.status_code == 409
        body = again.get_json()
        assert (body["ok"], body["problem"], body["reason"]) == (False, "already_opened", "already_inside")
        assert "Đã mở cổng cho khách này một lần" in body["message"]
        # The form without script: the same refusal as a flash.
        form = client.post(url, data={"gate_id": "lobby-1", "csrf_token": token(client)})
        assert form.status_code == 303
        assert "Đã mở cổng cho khách này một lần" in client.get(DESK).text
        # The other walk-in, admitted now, once their code ran out (the meeting's end, 11:00, plus the grace of
        # 30 minutes): refused.
        assert post_form(client, DESK, f"{DESK}khach/{second.id}/cho-vao", {}).status_code == 303
        clock.now = START + timedelta(hours=3, minutes=30)
        login(client, "baove")  # idle for longer than a session lasts
        late = client.post(f"{DESK}khach/{second.id}/mo-cong", data={"gate_id": "lobby-1",
                           "csrf_token": token(client)}, headers=as_json)
    finally:
        publisher.stop()
    assert late.status_code == 409 and (late.get_json()["problem"], late.get_json()["reason"]) == ("expired",
                                                                                                  "expired")
    with database.connection_context():
        assert GateCommand.select().count() == 1, "a refused open sends nothing to the gate"
        refusals = AuditEntry.select().where((AuditEntry.action == "walkin.open_gate")
                                             & AuditEntry.details.contains('"result": "refused"')).count()
        assert refusals == 3


def test_meeting_form_sets_the_walkin_policy(client: FlaskClient, desk: dict[str, Any]) -> None:
    login(client, "chuyenvien")
    meeting_url = f"/meetings/{desk['meeting']}"
    assert "Chờ chuyên viên duyệt" in client.get(meeting_url).text
    edit = client.get(f"{meeting_url}/edit").text
    assert 'name="walkin_policy"' in edit
    with database.connection_context():
        meeting = Meeting.get_by_id(desk["meeting"])
        fields = {"title": meeting.title, "starts_at": "2025-03-10T08:00", "ends_at": "2025-03-10T11:00",
                  "scheme": "compact", "entry_policy": "single", "walkin_policy": "direct"}
    response = client.post(f"{meeting_url}/edit", data={**fields, "csrf_token": csrf(edit)})
    assert response.status_code == 302, response.text
    assert 'id="walkin-policy">Cho vào trực tiếp' in client.get(meeting_url).text
    with database.connection_context():
        assert Meeting.get_by_id(desk["meeting"]).walkin_policy == "direct"


def test_a_guard_lands_on_the_desk_and_finds_it_in_the_menu(client: FlaskClient, desk: dict[str, Any]) -> None:
    login(client, "baove")
    home = client.get("/")
    assert home.status_code == 302 and home.location.endswith(DESK)
    assert f'href="{DESK}"' in client.get(DESK).text
    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "chuyenvien")
    assert client.get("/").location == "/meetings/"
    assert f'href="{DESK}"' not in client.get("/", follow_redirects=True).text


def test_the_desk_offers_meetings_running_now_across_midnight(client: FlaskClient, app: Flask, api: Api,
                                                              clock: Clock) -> None:
    """At 23:40 a meeting at 00:09 is offered; at 01:00 a meeting from 22:00 to 02:00 still is."""
    evening = START + timedelta(hours=15, minutes=40)  # 23:40 in Hà Nội
    clock.now = START - timedelta(days=3)
    make_users(clock())
    night = api.meeting(title="Họp trực ban đêm", starts_at=(evening + timedelta(minutes=29)).isoformat(),
                        ends_at=(evening + timedelta(hours=2)).isoformat())
    late = api.meeting(title="Họp xử lý sự cố", starts_at=(evening - timedelta(hours=1, minutes=40)).isoformat(),
                       ends_at=(evening + timedelta(hours=2, minutes=20)).isoformat())
    tomorrow = api.meeting(title="Họp giao ban sáng mai", starts_at=(evening + timedelta(hours=9)).isoformat(),
                           ends_at=(evening + timedelta(hours=11)).isoformat())
    clock.now = evening
    login(client, "baove")
    page = client.get(DESK).text
    assert f'value="{night["id"]}"' in page and "Họp trực ban đêm" in page
    assert f'value="{late["id"]}"' in page
    assert f'value="{tomorrow["id"]}"' not in page, "not a meeting of this night"

    clock.now = evening + timedelta(hours=1, minutes=20)  # 01:00 in Hà Nội
    login(client, "baove")  # a new shift
    page = client.get(DESK).text
    assert f'value="{late["id"]}"' in page and "Họp xử lý sự cố" in page
    assert f'value="{night["id"]}"' in page
