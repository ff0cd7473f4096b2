"""The invited organisation's registration pages, through Flask's test client, as a registrar uses them.

Every refusal shows a Vietnamese message and changes nothing; the page is read-only after the deadline;
wrong links look like unknown ones and are rate-limited; "Gửi Mail" only queues, and the worker sends.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.core.models import Change
from central.invitations.models import Invitation
from central.meetings.models import Meeting
from central.outbound.engine import OutboundWorker, Senders
from central.outbound.jobs import MailJob
from central.outbound.worker import PooledSmtpSender
from central.registration.models import Delegate
from devtools.mailcatcher import MailCatcher

from .conftest import Api, Clock


@pytest.fixture
def central_config(central_config: dict[str, Any]) -> dict[str, Any]:
    """The suite's config with the mail queue on and no worker thread (tests run the worker themselves)."""
    return {**central_config, "VAORA_MAIL_QUEUE": "1", "VAORA_MAIL_WORKER": "0"}


@pytest.fixture
def invitation(api: Api) -> dict[str, Any]:
    return api.invitation()


def page_url(invitation: dict[str, Any], suffix: str = "", secret: str | None = None) -> str:
    number = quote(invitation["number"], safe="/")
    return f"/dang-ky/{number}{suffix}?s={quote(invitation['secret'] if secret is None else secret, safe='')}"


class Registrar:
    """Drives the pages the way the organisation's clerk does: open, read the CSRF token, submit forms."""

    def __init__(self, client: FlaskClient, invitation: dict[str, Any]) -> None:
        self.client = client
        self.invitation = invitation

    def open(self) -> Any:
        return self.client.get(page_url(self.invitation))

    def token(self) -> str:
        html = self.open().get_data(as_text=True)
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match, "the page's forms carry a CSRF token"
        return match.group(1)

    def post(self, suffix: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> Any:
        body = dict(data or {})
        if csrf:
            body["csrf_token"] = self.token()
        return self.client.post(page_url(self.invitation, suffix), data=body)

    def add(self, name: str = "Nguyễn Văn An", email: str = "an.nguyen@example.vn", **extra: str) -> Any:
        return self.post("/dai-bieu", {"name": name, "email": email, "position": "Chuyên viên", **extra})


@pytest.fixture
def registrar(client: FlaskClient, invitation: dict[str, Any]) -> Registrar:
    return Registrar(client, invitation)


def state() -> tuple[list[tuple], int, int]:
    """Everything a refused request must leave alone: delegates, the change log, the mail queue (the
    invitation's own SMS, sent on approval, left out)."""
    from central.invitations.deliveries import KINDS

    with database.connection_context():
        rows = [
            (d.id, d.name, d.position, d.email, d.phone, d.revoked_at, d.mail_status)
            for d in Delegate.select().order_by(Delegate.id)
        ]
        return rows, Change.select().count(), MailJob.select().where(MailJob.kind.not_in(KINDS)).count()


def delegates() -> list[Delegate]:
    with database.connection_context():
        return list(Delegate.select().order_by(Delegate.id))


def text_of(response: Any) -> str:
    return response.get_data(as_text=True)


def test_the_link_opens_the_page_in_vietnamese(registrar: Registrar) -> None:
    response = registrar.open()
    assert response.status_code == 200
    html = text_of(response)
    for expected in (
        "Đăng ký đại biểu",
        "Họp giao ban tháng 3",
        "Sở Tài chính",
        registrar.invitation["number"],
        "Phòng họp số 1",
        "Thêm đại biểu",
        "Chưa có đại biểu nào",
        'name="viewport"',
    ):
        assert expected in html


def test_the_api_link_redirects_to_the_page(client: FlaskClient, invitation: dict[str, Any]) -> None:
    link = invitation["registration_url"].removeprefix("https://vaora.example.vn")
    response = client.get(link)
    assert response.status_code == 302
    assert client.get(response.headers["Location"]).status_code == 200


def test_a_wrong_secret_looks_exactly_like_an_unknown_number(client: FlaskClient, invitation: dict) -> None:
    wrong = client.get(page_url(invitation, secret="not-the-secret"))
    unknown = client.get(page_url({**invitation, "number": "999/TM-UBND"}))
    missing = client.get(f"/dang-ky/{invitation['number']}")
    assert wrong.status_code == unknown.status_code == missing.status_code == 404
    assert text_of(wrong) == text_of(unknown) == text_of(missing)
    assert "Họp giao ban" not in text_of(wrong) and "Sở Tài chính" not in text_of(wrong)
    assert client.get(page_url(invitation, "/tien-do", secret="x")).status_code == 404


def test_guessing_is_rate_limited_per_number_and_address(client: FlaskClient, invitation: dict[str, Any]) -> None:
    assert client.get(page_url(invitation)).status_code == 200, "good opens do not count"
    for n in range(10):
        assert client.get(page_url(invitation, secret=f"sai-{n}")).status_code == 404
    blocked = client.get(page_url(invitation))
    assert blocked.status_code == 429, "the eleventh try within a minute is refused, even with the right link"
    assert "quá nhiều lần" in text_of(blocked) and 1 <= int(blocked.headers["Retry-After"]) <= 60
    other = client.get(page_url(invitation), environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert other.status_code == 200, "another address is not affected"


def test_adding_a_delegate_issues_a_code_but_sends_nothing_yet(
    registrar: Registrar, mail: MailCatcher
) -> None:
    before = state()
    response = registrar.add(phone="0912 345 678")
    assert response.status_code == 302
    html = text_of(registrar.open())
    assert "Nguyễn Văn An" in html and "an.nguyen@example.vn" in html and "0912 345 678" in html  # stored +84...
    assert "Chưa gửi mail" in html and "Đã thêm đại biểu Nguyễn Văn An" in html
    (row,) = delegates()
    assert row.code and row.revoked_at is None and row.mail_status == "pending"
    after = state()
    assert after[1] == before[1] + 1, "gates are told (one change)"
    assert after[2] == 0 and mail.messages == [], "no mail before Gửi Mail"


BAD_INPUTS = [
    ({"name": "A" * 121}, "name", "Tối đa 120 ký tự"),
    ({"name": "   "}, "name", "Không được để trống"),
    ({"name": "Nguyễn\u0000An"}, "name", "Chứa ký tự không hợp lệ"),
    ({"position": "P" * 121}, "position", "Tối đa 120 ký tự"),
    ({"email": "an.nguyen@"}, "email", "Địa chỉ email không hợp lệ"),
    ({"email": ""}, "email", "Không được để trống"),
    ({"phone": "12345"}, "phone", "Số điện thoại không hợp lệ"),
    ({"phone": "0912345678901234567890123456789"}, "phone", "Tối đa 30 ký tự"),
]


@pytest.mark.parametrize(
    ("override", "field", "message"), BAD_INPUTS, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD_INPUTS)]
)
def test_each_bad_field_is_named_in_vietnamese_and_nothing_changes(
    registrar: Registrar, override: dict[str, str], field: str, message: str
) -> None:
    before = state()
    data = {"name": "Nguyễn Văn An", "email": "an.nguyen@example.vn", "position": "", "phone": "", **override}
    response = registrar.post("/dai-bieu", data)
    assert response.status_code == 400
    html = text_of(response)
    assert message in html
    assert f'id="f-{field}-error"' in html, "the message sits under the field"
    assert "Vui lòng sửa các lỗi" in html
    assert state() == before


def test_html_in_a_name_is_stored_as_text_and_escaped_on_output(registrar: Registrar) -> None:
    name = '<script>alert("x")</script> Trần <b>Bình</b>'
    assert registrar.add(name=name).status_code == 302
    html = text_of(registrar.open())
    assert "<script>alert" not in html and "<b>Bình</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Trần &lt;b&gt;Bình&lt;/b&gt;" in html
    refused = registrar.add(name=name, email="bad")
    assert refused.status_code == 400
    assert "<script>alert" not in text_of(refused), "the value shown back in the form is escaped too"


def test_duplicates_are_refused(registrar: Registrar) -> None:
    assert registrar.add(phone="0912345678").status_code == 302
    before = state()
    same_email = registrar.add(name="Người khác", email="AN.NGUYEN@example.vn")
    assert same_email.status_code == 400
    assert "Email này đã được dùng cho một đại biểu khác" in text_of(same_email)
    same_person = registrar.add(email="khac@example.vn", phone="+84 912 345 678")
    assert same_person.status_code == 400
    assert "cùng họ tên và số điện thoại" in text_of(same_person)
    assert state() == before


def test_a_missing_csrf_token_is_refused(registrar: Registrar) -> None:
    before = state()
    response = registrar.post("/dai-bieu", {"name": "Nguyễn Văn An", "email": "an@example.vn"}, csrf=False)
    assert response.status_code == 400
    assert "CSRF" in text_of(response)
    assert state() == before


def test_the_delegate_limit_is_respected(registrar: Registrar, invitation: dict[str, Any]) -> None:
    with database.connection_context():
        Invitation.update(delegate_limit=2).where(Invitation.id == invitation["id"]).execute()
    assert registrar.add(name="Một", email="mot@example.vn").status_code == 302
    assert registrar.add(name="Hai", email="hai@example.vn").status_code == 302
    assert "2/2" in text_of(registrar.open())
    before = state()
    third = registrar.add(name="Ba", email="ba@example.vn")
    assert third.status_code == 409
    assert "tối đa 2 đại biểu" in text_of(third)
    assert state() == before


def test_after_the_deadline_the_page_is_read_only(
    registrar: Registrar, invitation: dict, clock: Clock
) -> None:
    assert registrar.add().status_code == 302
    (delegate,) = delegates()
    token = registrar.token()
    with database.connection_context():
        Meeting.update(registration_deadline=clock.now - timedelta(minutes=1)).where(
            Meeting.id == invitation["meeting_id"]
        ).execute()
    html = text_of(registrar.open())
    assert "Đã hết hạn đăng ký" in html and "Nguyễn Văn An" in html
    assert "Thêm đại biểu</button>" not in html and "Gửi Mail" not in html and ">Xóa<" not in html
    before = state()
    for suffix, data in [
        ("/dai-bieu", {"name": "Lê Văn C", "email": "c@example.vn"}),
        (f"/dai-bieu/{delegate.id}/sua", {"name": "Nguyễn Văn An", "email": "moi@example.vn"}),
        (f"/dai-bieu/{delegate.id}/thay", {"name": "Lê Văn C", "email": "c@example.vn"}),
        (f"/dai-bieu/{delegate.id}/xoa", {}),
        ("/gui-mail", {}),
    ]:
        response = registrar.client.post(page_url(invitation, suffix), data={**data, "csrf_token": token})
        assert response.status_code == 409, suffix
        assert "Đã hết hạn đăng ký" in text_of(response)
    assert state() == before


def run_worker_once(app: Flask, mail: MailCatcher, clock: Clock) -> int:
    senders = Senders(mail=PooledSmtpSender(mail.host, mail.port), mail_from="vanphong@ubnd.example.vn")
    worker = OutboundWorker(senders=senders, clock=clock)
    with app.app_context(), database.connection_context():
        return worker.run_once()


def test_gui_mail_only_queues_and_progress_follows_the_worker(
    app: Flask, registrar: Registrar, mail: MailCatcher, clock: Clock
) -> None:
    for n in range(3):
        assert registrar.add(name=f"Đại biểu {n}", email=f"db{n}@example.vn").status_code == 302
    assert "Gửi Mail (3)" in text_of(registrar.open())
    response = registrar.post("/gui-mail")
    assert response.status_code == 302
    assert mail.messages == [], "the request only queued the mails"
    progress = registrar.client.get(page_url(registrar.invitation, "/tien-do")).get_json()
    assert {k: progress[k] for k in ("total", "sent", "pending", "done")} == {
        "total": 3,
        "sent": 0,
        "pending": 3,
        "done": False,
    }
    assert "Đã gửi 0/3" in text_of(registrar.open())

    assert run_worker_once(app, mail, clock) == 3
    messages = mail.wait_for(3)
    assert sorted(str(m["To"]) for m in messages) == ["db0@example.vn", "db1@example.vn", "db2@example.vn"]
    progress = registrar.client.get(page_url(registrar.invitation, "/tien-do")).get_json()
    assert (progress["sent"], progress["total"], progress["done"]) == (3, 3, True)
    assert set(progress["delegates"].values()) == {"sent"}
    html = text_of(registrar.open())
    assert "Đã gửi 3/3" in html and "Đã gửi mail" in html
    assert 'id="send-mail" disabled' in html, "nothing left to send"


def test_replacing_a_delegate_revokes_the_old_code_and_mails_the_new_one(
    app: Flask, registrar: Registrar, mail: MailCatcher, clock: Clock
) -> None:
    assert registrar.add().status_code == 302
    (old,) = delegates()
    form = text_of(registrar.client.get(page_url(registrar.invitation) + f"&thay={old.id}"))
    assert "Thay đại biểu Nguyễn Văn An bằng người khác" in form
    response = registrar.post(
        f"/dai-bieu/{old.id}/thay", {"name": "Trần Thị Bình", "email": "binh@example.vn"}
    )
    assert response.status_code == 302
    old_row, new_row = delegates()
    assert old_row.revoked_at is not None and new_row.revoked_at is None
    assert new_row.code != old_row.code and new_row.mail_status == "queued"
    with database.connection_context():
        kinds = [c.kind for c in Change.select().order_by(Change.seq)]
    assert kinds[-2:] == ["delegate_revoke", "delegate_upsert"]
    html = text_of(registrar.open())
    assert "Trần Thị Bình" in html and "Nguyễn Văn An" not in html.split("Danh sách đại biểu")[1]
    assert run_worker_once(app, mail, clock) == 1
    (message,) = mail.wait_for(1)
    assert message["To"] == "binh@example.vn"


def test_editing_and_removing(registrar: Registrar) -> None:
    assert registrar.add().status_code == 302
    (delegate,) = delegates()
    form = text_of(registrar.client.get(page_url(registrar.invitation) + f"&sua={delegate.id}"))
    assert 'value="an.nguyen@example.vn"' in form
    response = registrar.post(
        f"/dai-bieu/{delegate.id}/sua",
        {"name": "Nguyễn Văn An", "position": "Trưởng phòng", "email": "an.moi@example.vn"},
    )
    assert response.status_code == 302
    (edited,) = delegates()
    assert (edited.position, edited.email, edited.code) == (
        "Trưởng phòng",
        "an.moi@example.vn",
        delegate.code,
    )
    bad = registrar.post(f"/dai-bieu/{delegate.id}/sua", {"name": "", "email": "an.moi@example.vn"})
    assert bad.status_code == 400 and "Không được để trống" in text_of(bad)
    assert registrar.post(f"/dai-bieu/{delegate.id}/xoa").status_code == 302
    (removed,) = delegates()
    assert removed.revoked_at is not None
    assert "Chưa có đại biểu nào" in text_of(registrar.open())
    again = registrar.post(f"/dai-bieu/{delegate.id}/xoa")
    assert again.status_code == 404, "a removed delegate is gone"


def test_another_invitations_delegate_cannot_be_touched(
    api: Api, client: FlaskClient, registrar: Registrar
) -> None:
    assert registrar.add().status_code == 302
    (delegate,) = delegates()
    other = Registrar(client, api.invitation(organisation_id=api.organisation("Sở Nội vụ")["id"]))
    before = state()
    response = other.post(f"/dai-bieu/{delegate.id}/xoa")
    assert response.status_code == 404
    assert state() == before


def test_api_registration_is_queued_then_sent(
    app: Flask, api: Api, invitation: dict, mail: MailCatcher, clock: Clock
) -> None:
    response = api.register(invitation)
    assert response.status_code == 201
    assert response.get_json()["mail_status"] == "queued"
    assert mail.messages == []
    assert run_worker_once(app, mail, clock) == 1
    (message,) = mail.wait_for(1)
    assert message["To"] == "an.nguyen@example.vn"
    (row,) = delegates()
    assert row.mail_status == "sent"


def test_the_apps_worker_thread_sends_queued_codes_and_stops(
    central_config: dict[str, Any], clock: Clock, mail: MailCatcher
) -> None:
    from central.app import create_app

    app = create_app({**central_config, "VAORA_MAIL_WORKER": "1"}, clock=clock)
    state = app.extensions["vaora_mailqueue"]
    try:
        assert state.enabled and state.thread is not None and state.thread.is_alive()
        api = Api(app.test_client())
        response = api.register(api.invitation())
        assert response.status_code == 201 and response.get_json()["mail_status"] == "queued"
        (message,) = mail.wait_for(1, timeout=10)
        assert message["To"] == "an.nguyen@example.vn"
    finally:
        state.stop()
    assert not state.thread.is_alive()
    (row,) = delegates()
    assert row.mail_status == "sent"
