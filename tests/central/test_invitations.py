"""Invitations: created as drafts on every path, numbered per year (in the configured format, distinct under
concurrency) and given a secret only by a leader's approval, which sends the link to the organisation."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from flask.testing import FlaskClient

from central.core.db import database
from central.core.models import AuditEntry
from central.invitations import organisations
from central.invitations.models import Delivery, Invitation
from central.invitations.services import approve_invitation, draft_invitations, find_invitation

from .conftest import Api, Clock
from .staff import login, make_users, page_token


def test_creating_an_invitation_by_api_token_gives_a_draft_without_number_or_secret(api: Api) -> None:
    meeting = api.meeting()["id"]
    organisation = api.organisation()["id"]
    response = api.post("/api/v1/invitations", {"meeting_id": meeting, "organisation_id": organisation})
    assert response.status_code == 201
    body = response.get_json()
    assert (body["status"], body["number"], body["approved_by"]) == ("draft", None, "")
    assert "secret" not in body and "registration_url" not in body
    with database.connection_context():
        row = Invitation.get_by_id(body["id"])
        assert (row.secret_hash, row.number, row.seq) == (None, None, None)
        assert not Delivery.select().where(Delivery.invitation == row.id).exists(), "nothing is sent to a draft"
        assert AuditEntry.get(AuditEntry.target == f"invitation:{row.id}").action == "invitation.draft"
    assert api.client.application.extensions["vaora"].sms_sender.sent == []
    # The organiser's token cannot approve its own invitation; a second one for the same organisation is refused.
    assert api.post(f"/api/v1/invitations/{body['id']}/approve", {}).status_code == 403
    again = api.post("/api/v1/invitations", {"meeting_id": meeting, "organisation_id": organisation})
    assert again.status_code == 409 and "Đã có thư mời cho" in again.get_json()["fields"]["organisation_id"]


def test_an_organiser_session_also_gets_a_draft_and_cannot_approve(api: Api, client: FlaskClient,
                                                                     clock: Clock) -> None:
    make_users(clock())
    meeting = api.meeting()["id"]
    organisation = api.organisation()["id"]
    login(client, "chuyenvien")
    token = {"X-CSRFToken": page_token(client, "/invitations/")}
    created = client.post("/api/v1/invitations", json={"meeting_id": meeting, "organisation_id": organisation},
                          headers=token)
    assert created.status_code == 201 and created.get_json()["status"] == "draft"
    assert created.get_json()["drafted_by"] == "chuyenvien"
    assert client.post(f"/api/v1/invitations/{created.get_json()['id']}/approve", headers=token).status_code == 403


def test_only_the_leaders_approval_numbers_and_sends_and_the_secret_reaches_only_the_organisation(
    api: Api, clock: Clock
) -> None:
    draft = api.draft(api.meeting()["id"], api.organisation()["id"])
    approved = api.approve(draft["id"])
    assert approved.status_code == 200
    body = approved.get_json()
    assert (body["number"], body["approved_by"], body["status"]) == ("1/GM-UBND", "lanhdao-duyet", "sent")
    assert "secret" not in str(body), "the approval's answer never carries the secret"
    ((phone, sms),) = api.client.application.extensions["vaora"].sms_sender.sent
    assert phone == "+84912345678" and "So 1/GM-UBND" in sms
    link = api.received_link("1/GM-UBND")
    assert link.link == f"https://vaora.example.vn/dk/{link.secret}" and len(link.secret) == 8  # the SMS's short link
    assert api.get(f"/api/v1/invitations/{draft['id']}").get_json()["number"] == "1/GM-UBND"
    assert link.secret not in api.get(f"/api/v1/invitations/{draft['id']}").get_data(as_text=True)
    assert api.register({"number": "1/GM-UBND", "secret": link.secret}).status_code == 201


def test_numbers_follow_the_years_register(api: Api, clock: Clock) -> None:
    meeting = api.meeting()["id"]
    first = api.invitation(meeting, api.organisation("Sở Tài chính")["id"])
    second = api.invitation(meeting, api.organisation("Sở Xây dựng")["id"])
    assert (first["number"], second["number"]) == ("1/GM-UBND", "2/GM-UBND")
    assert first["registration_url"].startswith("https://vaora.example.vn/dk/")
    assert first["secret"] != second["secret"]

    # 31 Dec 17:00 UTC is already 1 Jan in Hà Nội: a new register starts at 1.
    clock.now = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
    next_year = api.invitation(meeting, api.organisation("Sở Y tế")["id"])
    assert (next_year["number"], next_year["year"], next_year["seq"]) == ("1/GM-UBND", 2026, 1)


def test_secret_is_stored_hashed(api: Api, db: None) -> None:
    invitation = api.invitation()
    row = Invitation.get(Invitation.number == invitation["number"])
    assert invitation["secret"] not in row.secret_hash
    assert find_invitation(invitation["number"], invitation["secret"]).id == row.id


def _drafts(clock: Clock, api: Api, count: int) -> list[int]:
    meeting = api.meeting()["id"]
    with database.connection_context():
        orgs = [organisations.create_organisation({"name": f"Đơn vị {n}"}, now=clock()).id for n in range(count)]
        return [i.id for i in draft_invitations({"meeting_id": meeting, "organisation_ids": orgs},
                                                actor="chuyenvien", now=clock())]


def test_configured_format_with_year(clock: Clock, db: None, api: Api) -> None:
    (draft,) = _drafts(clock, api, 1)
    approved = approve_invitation(draft, actor="lanhdao", now=clock(), number_format="TM-{year}-{seq:04d}",
                                  public_url="https://vaora.example.vn")
    assert approved.invitation.number == "TM-2025-0001"


def test_invitation_needs_existing_meeting_and_organisation(api: Api) -> None:
    response = api.post("/api/v1/invitations", {"meeting_id": 404, "organisation_id": "x"})
    assert response.status_code == 400
    assert set(response.get_json()["fields"]) == {"organisation_id"}  # the body's model refuses "x" first
    response = api.post("/api/v1/invitations", {"meeting_id": 404, "organisation_id": 405})
    assert response.status_code == 400
    assert set(response.get_json()["fields"]) == {"meeting_id", "organisation_id"}


def test_concurrent_approvals_get_distinct_numbers(api: Api, clock: Clock) -> None:
    workers, per_worker = 6, 4
    drafts = _drafts(clock, api, workers * per_worker)
    barrier = threading.Barrier(workers)
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(mine: list[int]) -> None:
        try:
            with database.connection_context():
                barrier.wait()
                for draft in mine:
                    approved = approve_invitation(draft, actor="lanhdao", now=clock(), number_format="{seq}/GM-UBND",
                                                  public_url="https://vaora.example.vn")
                    with lock:
                        numbers.append(approved.invitation.number)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(drafts[n::workers],)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    total = workers * per_worker
    expected = [f"{i}/GM-UBND" for i in range(1, total + 1)]
    assert sorted(numbers, key=lambda n: int(n.split("/")[0])) == expected


