"""The office's queues and notices (issue 17 points 6 and 8, issue 14 point 5's approval), through the pages and the
API as the people would use them:

- a meeting that asks the office to approve registrations: a delegate stays pending (no code, no mail, not on the
  gates) until a clerk or leader approves it on "Đăng ký chờ duyệt" (code issued and mailed) or refuses it with a
  reason (the organisation sees it; the place is free again);
- walk-ins admitted at the desk use none of the organisation's quota, are not on its registration page, and the
  attendance list shows them apart with the desk as their source;
- the leader lands on the invitations awaiting approval, with a count in the menu, and approves several at once;
- a returned invitation shows in the clerk's menu and is e-mailed to them with the leader's comment; the clerk
  changes the organisation and resubmits it;
- a replaced delegate is told by e-mail that their code no longer works;
- people are shown by full name and position; each new route answers each role as it should.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.auth import users
from central.auth.models import User
from central.core.db import database
from central.core.states import ApprovalState, InvitationState
from central.desk import walkins
from central.invitations.models import Invitation
from central.meetings.models import Meeting
from central.registration.models import Delegate
from devtools.mailcatcher import MailCatcher

from .conftest import AUTH, START, Api
from .staff import PASSWORD, cheap_hashing, csrf, login, make_users
from .test_walkins import NOW as DESK_NOW
from .test_walkins import register as register_walkin

AN = {"name": "Nguyễn Văn An", "position": "Phó Giám đốc", "email": "an.nguyen@example.vn"}
BINH = {"name": "Trần Thị Bình", "position": "Chuyên viên", "email": "binh.tran@example.vn"}


def _page(invitation: dict[str, Any], suffix: str = "") -> str:
    return f"/dang-ky/{quote(invitation['number'], safe='/')}{suffix}?s={quote(invitation['secret'], safe='')}"


def _delegate(delegate_id: int) -> Delegate:
    with database.connection_context():
        return Delegate.get_by_id(delegate_id)


def _staff(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def _code_mails(mail: MailCatcher, address: str) -> list[Any]:
    return [m for m in mail.messages if m["To"] == address and str(m["Subject"]).startswith("Mã vào cổng:")]


@pytest.fixture
def staff(app: Flask, clock: Any) -> None:
    """The accounts of :data:`staff.ROLES`; the clerk and the leader have an e-mail address and a position."""
    make_users(clock())
    with database.connection_context():
        for username, full_name, position in (("chuyenvien", "Phạm Thị Hoa", "Chuyên viên Văn phòng"),
                                              ("lanhdao", "Lê Văn Hùng", "Chánh Văn phòng")):
            user = User.get(User.username == username)
            users.update_user(user.id, {"full_name": full_name, "position": position,
                                        "email": f"{username}@ubnd.example.vn"}, actor="test", now=clock())


def approval_invitation(api: Api, *, limit: int | None = None) -> dict[str, Any]:
    """An approved invitation (with its secret) to a meeting that asks the office to approve registrations."""
    meeting = api.meeting(registration_approval=True)
    assert meeting["registration_approval"] is True
    invitation = api.invitation(meeting["id"])
    if limit is not None:
        with database.connection_context():
            Invitation.update(delegate_limit=limit).where(Invitation.id == invitation["id"]).execute()
    return invitation


# --- the office's approval of registrations -------------------------------------------------------------------


def test_a_pending_delegate_gets_no_code_until_the_office_approves_then_the_code_is_mailed(
    app: Flask, client: FlaskClient, api: Api, mail: MailCatcher, staff: None
) -> None:
    invitation = approval_invitation(api)
    token = api.gate()
    response = api.register(invitation, **AN)
    assert response.status_code == 201
    body = response.get_json()
    assert body["approval"] == "pending"
    pending = _delegate(body["id"])
    assert pending.code == "" and pending.code_hash is None and pending.credential.startswith("pending:")
    assert _code_mails(mail, AN["email"]) == []
    snapshot = client.get("/api/v1/gates/g1/snapshot", headers={"Authorization": f"Bearer {token}"})
    assert snapshot.status_code == 200 and AN["name"] not in snapshot.get_data(as_text=True)
    page = client.get(_page(invitation)).get_data(as_text=True)
    assert "Chờ văn phòng duyệt" in page and 'id="approval-notice"' in page
    assert re.search(r'id="send-mail" disabled', page), "nothing to mail while the only delegate is pending"

    clerk = _staff(app, "chuyenvien")
    inbox = clerk.get(f"/invitations/dang-ky-cho-duyet?meeting={invitation['meeting_id']}")
    assert inbox.status_code == 200
    html = inbox.get_data(as_text=True)
    assert AN["name"] in html and invitation["number"] in html
    assert re.search(r'id="nav-registrations"[^>]*>[^<]*<span class="nav-count"[^>]*>1</span>', html)
    approved = clerk.post(f"/invitations/dang-ky-cho-duyet/duyet?meeting={invitation['meeting_id']}",
                          data={"csrf_token": csrf(html), "chon": [str(body["id"])]}, follow_redirects=True)
    assert "Đã duyệt 1 đại biểu" in approved.get_data(as_text=True)
    assert "Không có đăng ký nào chờ duyệt." in approved.get_data(as_text=True)

    done = _delegate(body["id"])
    assert done.approval == ApprovalState.APPROVED and done.code and done.decided_by == "chuyenvien"
    mail.wait_for(1)
    assert len(_code_mails(mail, AN["email"])) == 1, "approving mailed the code, once"
    snapshot = client.get("/api/v1/gates/g1/snapshot", headers={"Authorization": f"Bearer {token}"})
    assert AN["name"] in snapshot.get_data(as_text=True)
    assert "Chờ văn phòng duyệt" not in client.get(_page(invitation)).get_data(as_text=True)


def test_a_refusal_needs_a_reason_frees_the_place_and_the_organisation_reads_it(
    app: Flask, client: FlaskClient, api: Api, mail: MailCatcher, staff: None
) -> None:
    invitation = approval_invitation(api, limit=1)
    first = api.register(invitation, **AN).get_json()
    over = api.register(invitation, **BINH)
    assert over.status_code == 409 and "tối đa 1" in over.get_json()["message"], "a pending delegate holds a place"

    leader = _staff(app, "lanhdao")
    page = leader.get("/invitations/dang-ky-cho-duyet").get_data(as_text=True)
    empty = leader.post(f"/invitations/dang-ky-cho-duyet/{first['id']}/tu-choi",
                        data={"csrf_token": csrf(page), "reason": "   "}, follow_redirects=True)
    assert "Không được để trống" in empty.get_data(as_text=True)
    assert _delegate(first["id"]).approval == ApprovalState.PENDING
    refused = leader.post(f"/invitations/dang-ky-cho-duyet/{first['id']}/tu-choi",
                          data={"csrf_token": csrf(page), "reason": "Đề nghị cử lãnh đạo cấp Sở"},
                          follow_redirects=True)
    assert f"Đã từ chối đăng ký của {AN['name']}." in refused.get_data(as_text=True)
    row = _delegate(first["id"])
    assert row.approval == ApprovalState.REFUSED and row.code == "" and row.revoked_at is not None
    again = leader.post("/invitations/dang-ky-cho-duyet/duyet",
                        data={"csrf_token": csrf(page), "chon": [str(first["id"])]}, follow_redirects=True)
    assert "không còn chờ duyệt" in again.get_data(as_text=True)
    assert mail.messages == [m for m in mail.messages if m["To"] != AN["email"]], "a refused delegate gets no code"

    organisation = client.get(_page(invitation)).get_data(as_text=True)
    assert 'id="refused"' in organisation and "Đề nghị cử lãnh đạo cấp Sở" in organisation
    assert api.register(invitation, **BINH).status_code == 201, "the refused delegate's place is free again"


@pytest.mark.parametrize("bad", ["abc", "-1", str(2**64), ""])
def test_bulk_approval_ignores_what_is_not_an_id(app: Flask, api: Api, staff: None, bad: str) -> None:
    invitation = approval_invitation(api)
    delegate = api.register(invitation, **AN).get_json()
    clerk = _staff(app, "chuyenvien")
    page = clerk.get("/invitations/dang-ky-cho-duyet").get_data(as_text=True)
    response = clerk.post("/invitations/dang-ky-cho-duyet/duyet", data={"csrf_token": csrf(page), "chon": [bad]},
                          follow_redirects=True)
    assert response.status_code == 200 and "Chưa chọn đăng ký nào." in response.get_data(as_text=True)
    assert _delegate(delegate["id"]).approval == ApprovalState.PENDING
    no_csrf = clerk.post("/invitations/dang-ky-cho-duyet/duyet", data={"chon": [str(delegate["id"])]})
    assert no_csrf.status_code == 400 and _delegate(delegate["id"]).approval == ApprovalState.PENDING


def test_a_cancelled_meetings_pending_registration_cannot_be_approved(
    app: Flask, client: FlaskClient, api: Api, staff: None
) -> None:
    invitation = approval_invitation(api)
    delegate = api.register(invitation, **AN).get_json()
    cancelled = client.post(f"/api/v1/meetings/{invitation['meeting_id']}/status", json={"status": "cancelled"},
                            headers=AUTH)
    assert cancelled.status_code == 200
    clerk = _staff(app, "chuyenvien")
    page = clerk.get("/invitations/dang-ky-cho-duyet").get_data(as_text=True)
    assert AN["name"] not in page, "cancelling the meeting withdrew its pending registrations"
    response = clerk.post("/invitations/dang-ky-cho-duyet/duyet",
                          data={"csrf_token": csrf(page), "chon": [str(delegate["id"])]}, follow_redirects=True)
    assert "chưa duyệt được" in response.get_data(as_text=True)
    assert _delegate(delegate["id"]).code == ""


# --- walk-ins are not the organisation's delegates ------------------------------------------------------------


def test_a_walkin_uses_no_quota_is_not_on_the_organisations_page_and_is_listed_apart(
    app: Flask, client: FlaskClient, api: Api, staff: None
) -> None:
    invitation = api.invitation(api.meeting()["id"])
    with database.connection_context():
        Invitation.update(delegate_limit=1).where(Invitation.id == invitation["id"]).execute()
        meeting = Meeting.get_by_id(invitation["meeting_id"])
        walkins.set_policy(meeting, "direct", "chuyenvien", now=DESK_NOW)
        walkin = register_walkin(Meeting.get_by_id(meeting.id), Invitation.get_by_id(invitation["id"]))
        admitted = walkins.admit(walkin, "baove", now=DESK_NOW)
        walkin_name = admitted.full_name
        assert admitted.delegate is not None and admitted.delegate.is_walkin
        walkin_delegate = admitted.delegate_id
    page = client.get(_page(invitation)).get_data(as_text=True)
    assert walkin_name not in page
    removed = client.post(_page(invitation, f"/dai-bieu/{walkin_delegate}/xoa"), data={"csrf_token": csrf(page)})
    assert removed.status_code == 404, "the organisation cannot remove (or edit, or replace) a walk-in"
    assert _delegate(walkin_delegate).revoked_at is None
    assert re.search(r'id="delegate-count">0/1<', page)
    assert api.register(invitation, **AN).status_code == 201, "the walk-in took none of the organisation's places"
    assert api.register(invitation, **BINH).status_code == 409
    assert walkin_name not in client.get(_page(invitation)).get_data(as_text=True)

    leader = _staff(app, "lanhdao")
    listing = leader.get(f"/meetings/{invitation['meeting_id']}/danh-sach-tham-du.csv")
    assert listing.status_code == 200
    lines = listing.data.decode("utf-8-sig").splitlines()
    assert lines[0].endswith("Ghi chú,Nguồn,Xung đột")
    an_line = next(line for line in lines if AN["name"] in line)
    walkin_line = next(line for line in lines if walkin_name in line)
    assert an_line.endswith(",Đơn vị đăng ký,") and walkin_line.endswith(",Bàn tiếp đón,"), "source, no conflict"
    assert lines.index(walkin_line) > lines.index(an_line), "walk-ins come after the organisations' delegates"


# --- the leader's inbox, returned invitations -----------------------------------------------------------------


def test_the_leader_lands_on_the_waiting_invitations_and_approves_several_at_once(
    app: Flask, api: Api, staff: None
) -> None:
    meeting = api.meeting()
    drafts = [api.draft(meeting["id"], api.organisation(name)["id"])["id"]
              for name in ("Sở Tài chính", "Sở Y tế", "Sở Nội vụ")]
    leader = _staff(app, "lanhdao")
    home = leader.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/invitations/cho-duyet")
    page = leader.get("/invitations/cho-duyet").get_data(as_text=True)
    assert re.search(r'id="nav-inbox"[^>]*>[^<]*<span class="nav-count"[^>]*>3</span>', page)
    with database.connection_context():  # one of them is returned meanwhile by another leader
        from central.invitations import services as invitations

        invitations.return_invitation(drafts[2], "Sai đơn vị", actor="lanhdao2", now=START - timedelta(days=2))
    response = leader.post("/invitations/duyet-nhieu", data={"csrf_token": csrf(page),
                                                              "chon": [str(i) for i in drafts]}, follow_redirects=True)
    html = response.get_data(as_text=True)
    with database.connection_context():
        numbers = [Invitation.get_by_id(i).number for i in drafts[:2]]
    assert f"Đã duyệt 2 thư mời: {numbers[0]}, {numbers[1]}." in html
    assert f"Thư mời #{drafts[2]} chưa duyệt được" in html
    assert "Không có thư mời nào chờ duyệt." in html
    assert 'id="nav-inbox"' in html and "nav-count" not in html.split('id="nav-inbox"')[1].split("</a>")[0]
    with database.connection_context():
        states = [Invitation.get_by_id(i).status for i in drafts]
    assert all(state in InvitationState.REGISTERABLE for state in states[:2])
    assert states[2] == InvitationState.RETURNED


def test_a_returned_invitation_notifies_the_clerk_who_edits_and_resubmits_it(
    app: Flask, api: Api, mail: MailCatcher, staff: None
) -> None:
    meeting = api.meeting()
    wrong = api.organisation("Sở Tài chính")["id"]
    right = api.organisation("Sở Kế hoạch và Đầu tư")["id"]
    clerk = _staff(app, "chuyenvien")
    page = clerk.get(f"/meetings/{meeting['id']}").get_data(as_text=True)
    drafted = clerk.post(f"/meetings/{meeting['id']}/invitations",
                         data={"csrf_token": csrf(page), "organisation_ids": [str(wrong)], "delegate_limit": "2"})
    assert drafted.status_code == 302
    with database.connection_context():
        invitation_id = Invitation.get(Invitation.meeting == meeting["id"]).id

    leader = _staff(app, "lanhdao")
    shown = leader.get(f"/invitations/{invitation_id}").get_data(as_text=True)
    assert "Phạm Thị Hoa, Chuyên viên Văn phòng" in shown and ">chuyenvien<" not in shown
    comment = "Mời Sở Kế hoạch và Đầu tư, không phải Sở Tài chính"
    returned = leader.post(f"/invitations/{invitation_id}/return", data={"csrf_token": csrf(shown), "comment": comment})
    assert returned.status_code == 302
    (notice,) = mail.wait_for(1)
    assert notice["To"] == "chuyenvien@ubnd.example.vn" and notice["Date"]
    text = notice.get_body(("plain",)).get_content()
    assert comment in text and "Lê Văn Hùng, Chánh Văn phòng" in text

    menu = clerk.get("/meetings/").get_data(as_text=True)
    assert re.search(r'id="nav-invitations"[^>]*>[^<]*<span class="nav-count"[^>]*>1</span>', menu)
    listing = clerk.get("/invitations/").get_data(as_text=True)
    assert 'id="returned-notice"' in listing and "không phải Sở Tài chính" in listing
    page = clerk.get(f"/invitations/{invitation_id}").get_data(as_text=True)
    assert "Lê Văn Hùng, Chánh Văn phòng" in page
    resubmitted = clerk.post(f"/invitations/{invitation_id}/resubmit", data={
        "csrf_token": csrf(page), "organisation_id": str(right), "delegate_limit": "4"}, follow_redirects=True)
    assert "Đã trình lại thư mời." in resubmitted.get_data(as_text=True)
    with database.connection_context():
        row = Invitation.get_by_id(invitation_id)
        assert (row.status, row.organisation_id, row.delegate_limit) == (InvitationState.DRAFT, right, 4)
    assert "nav-count" not in clerk.get("/meetings/").get_data(as_text=True).split('id="nav-invitations"')[1][:200]
    taken = api.draft(meeting["id"], wrong)["id"]
    page = clerk.get(f"/invitations/{taken}").get_data(as_text=True)
    clash = clerk.post(f"/invitations/{taken}/resubmit", data={
        "csrf_token": csrf(page), "organisation_id": str(right), "delegate_limit": ""}, follow_redirects=True)
    assert "Đã có thư mời cho: Sở Kế hoạch và Đầu tư" in clash.get_data(as_text=True)


# --- a replaced delegate is told ------------------------------------------------------------------------------


def test_a_replaced_delegate_is_told_by_email_that_the_code_no_longer_works(
    client: FlaskClient, api: Api, mail: MailCatcher
) -> None:
    invitation = api.invitation(api.meeting()["id"])
    first = api.register(invitation, **AN).get_json()
    mail.wait_for(1)  # An's code (the invitation went by SMS only)
    before = len(mail.messages)
    page = client.get(_page(invitation, "") + f"&thay={first['id']}").get_data(as_text=True)
    replaced = client.post(_page(invitation, f"/dai-bieu/{first['id']}/thay"),
                           data={**{k: v for k, v in BINH.items()}, "phone": "", "csrf_token": csrf(page)})
    assert replaced.status_code == 302
    notices = [m for m in mail.wait_for(before + 2) if m["To"] == AN["email"] and "không còn hiệu lực" in m["Subject"]]
    assert len(notices) == 1
    text = notices[0].get_body(("plain",)).get_content()
    assert "đã cử người khác thay Ông/Bà" in text and invitation["number"] in text
    assert _code_mails(mail, BINH["email"]), "the new delegate got the code"


# --- every new route, every role ------------------------------------------------------------------------------


@pytest.mark.parametrize(("username", "inbox", "registrations"), [
    (None, 302, 302), ("baove", 403, 403), ("chuyenvien", 403, 200), ("lanhdao", 200, 200), ("admin", 200, 200),
])
def test_each_role_reaches_only_its_queues(app: Flask, staff: None, username: str | None, inbox: int,
                                           registrations: int) -> None:
    """Pages: 200, 403, or the login page (302) for nobody. Actions (CSRF checked apart, off here): the allowed
    roles act and come back to the page (302), the others get 403 and nobody the login page."""
    client = app.test_client() if username is None else _staff(app, username)
    assert client.get("/invitations/cho-duyet").status_code == inbox
    assert client.get("/invitations/dang-ky-cho-duyet").status_code == registrations
    app.config["WTF_CSRF_ENABLED"] = False
    for url, page in (("/invitations/duyet-nhieu", inbox), ("/invitations/dang-ky-cho-duyet/duyet", registrations),
                      ("/invitations/dang-ky-cho-duyet/1/tu-choi", registrations)):
        response = client.post(url, data={"chon": ["1"], "reason": "Không phù hợp"})
        assert response.status_code == (302 if page in (200, 302) else 403), url
        if username is None:
            assert "/login" in response.headers["Location"]


def test_a_staff_members_position_is_kept_and_shown(app: Flask, staff: None) -> None:
    cheap_hashing()
    admin = _staff(app, "admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "Lê Văn Hùng, Chánh Văn phòng" in page
    created = admin.post("/admin/users", data={"csrf_token": csrf(page), "username": "phochanh",
                                               "full_name": "Đỗ Thị Mai", "position": "Phó Chánh Văn phòng",
                                               "role": "approver", "password": PASSWORD, "active": "y"})
    assert created.status_code == 302
    assert "Đỗ Thị Mai, Phó Chánh Văn phòng" in admin.get("/admin/users").get_data(as_text=True)
    me = _staff(app, "phochanh").get("/invitations/cho-duyet").get_data(as_text=True)
    assert "Đỗ Thị Mai, Phó Chánh Văn phòng" in me


def test_approving_a_signed_meetings_registration_signs_its_code(app: Flask, api: Api, staff: None) -> None:
    from protocols.codes import read_signed_claims

    meeting = api.meeting(scheme="signed", registration_approval=True)
    invitation = api.invitation(meeting["id"])
    delegate = api.register(invitation, **AN).get_json()
    assert _delegate(delegate["id"]).code == ""
    leader = _staff(app, "lanhdao")
    page = leader.get("/invitations/dang-ky-cho-duyet").get_data(as_text=True)
    leader.post("/invitations/dang-ky-cho-duyet/duyet", data={"csrf_token": csrf(page), "chon": [str(delegate["id"])]})
    claims = read_signed_claims(_delegate(delegate["id"]).code)
    assert claims is not None and claims.attendee_id == delegate["id"] and claims.meeting_id == meeting["id"]
