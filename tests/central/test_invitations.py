"""Invitation numbering: a sequence per year in the configured format, distinct under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from central.core.db import database
from central.invitations.models import Invitation
from central.invitations.services import create_invitation, find_invitation

from .conftest import Api, Clock


def test_numbers_follow_the_years_register(api: Api, clock: Clock) -> None:
    meeting = api.meeting()["id"]
    organisation = api.organisation()["id"]
    first = api.invitation(meeting, organisation)
    second = api.invitation(meeting, organisation)
    assert (first["number"], second["number"]) == ("1/TM-UBND", "2/TM-UBND")
    assert first["registration_url"].startswith("https://vaora.example.vn/registration/1/TM-UBND?secret=")
    assert first["secret"] != second["secret"]

    # 31 Dec 17:00 UTC is already 1 Jan in Hà Nội: a new register starts at 1.
    clock.now = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
    next_year = api.invitation(meeting, organisation)
    assert (next_year["number"], next_year["year"], next_year["seq"]) == ("1/TM-UBND", 2026, 1)


def test_secret_is_stored_hashed(api: Api, db: None) -> None:
    invitation = api.invitation()
    row = Invitation.get(Invitation.number == invitation["number"])
    assert invitation["secret"] not in row.secret_hash
    assert find_invitation(invitation["number"], invitation["secret"]).id == row.id


def test_configured_format_with_year(central_config: dict, clock: Clock, db: None, api: Api) -> None:
    meeting = api.meeting()["id"]
    organisation = api.organisation()["id"]
    issued = create_invitation(
        {"meeting_id": meeting, "organisation_id": organisation},
        now=clock(),
        number_format="TM-{year}-{seq:04d}",
    )
    assert issued.invitation.number == "TM-2025-0001"


def test_invitation_needs_existing_meeting_and_organisation(api: Api) -> None:
    response = api.post("/api/v1/invitations", {"meeting_id": 404, "organisation_id": "x"})
    assert response.status_code == 400
    assert set(response.get_json()["fields"]) == {"organisation_id"}  # the body's model refuses "x" first
    response = api.post("/api/v1/invitations", {"meeting_id": 404, "organisation_id": 405})
    assert response.status_code == 400
    assert set(response.get_json()["fields"]) == {"meeting_id", "organisation_id"}


def test_concurrent_requests_get_distinct_numbers(api: Api, clock: Clock, db: None) -> None:
    meeting = api.meeting()["id"]
    organisation = api.organisation()["id"]
    workers, per_worker = 6, 4
    barrier = threading.Barrier(workers)
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            with database.connection_context():
                barrier.wait()
                for _ in range(per_worker):
                    issued = create_invitation(
                        {"meeting_id": meeting, "organisation_id": organisation}, now=clock()
                    )
                    with lock:
                        numbers.append(issued.invitation.number)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    total = workers * per_worker
    expected = [f"{i}/TM-UBND" for i in range(1, total + 1)]
    assert sorted(numbers, key=lambda n: int(n.split("/")[0])) == expected
