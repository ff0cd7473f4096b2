"""Which sites' gates each change goes to (issue 16, point 3: a change stream per site), and the fleet page comparing
each gate with its own site's latest change.

Driven through the meeting services and JSON API as the office uses them, with a main hall at site hq and remote
points ("điểm cầu") at st and bt (the fixtures of test_remote_points): a meeting's changes go to its venues' sites,
old and new when they change (a site it left learns so), its delegates' registrations and revocations to its sites
only, a signing key to every site. A venue moved to another gate site reaches both sites' gates at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from central.attendance import services as attendance
from central.core.changes import (
    append_change,
    change_sites,
    changes_since,
    last_seq,
    last_seq_of_sites,
    sites_of_changes,
)
from central.core.db import database
from central.gates.models import Gate
from central.meetings import venues
from central.meetings.models import Meeting
from protocols import payloads

from .conftest import AUTH, Api, Clock, booked_ahead
from .test_remote_points import BA_TO, MAIN, REMOTE, SMALL, halls, meeting_body

__all__ = ["halls"]  # the fixture, used by name below

AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def changes_after(seq: int) -> list[tuple[str, int | None, set[str]]]:
    """(kind, meeting or delegate id, sites) of each change after ``seq``."""
    with database.connection_context():
        changes = changes_since(seq)
        sites = sites_of_changes(change.seq for change in changes)
    described = []
    for change in changes:
        body: Any = change.body
        ident = body.meeting.id if body.kind == "meeting_upsert" else (
            body.delegate.id if body.kind == "delegate_upsert" else getattr(body, "delegate_id", None))
        described.append((body.kind, ident, sites.get(change.seq, set())))
    return described


def now_seq() -> int:
    with database.connection_context():
        return last_seq()


def test_each_change_goes_to_the_sites_of_its_meeting(api: Api, clock: Clock, halls: dict[str, int]) -> None:
    before = now_seq()
    with booked_ahead(clock):
        meeting = api.post("/api/v1/meetings", meeting_body(halls, remote=(REMOTE,))).get_json()
    local = api.post("/api/v1/meetings", meeting_body(halls, hall=SMALL, title="Họp giao ban")).get_json()
    assert changes_after(before) == [("meeting_upsert", meeting["id"], {"hq", "st"}),
                                     ("meeting_upsert", local["id"], {"hq"})]

    invitation = api.invitation(meeting["id"], api.organisation()["id"])
    before = now_seq()
    first = api.register(invitation).get_json()["id"]
    assert changes_after(before) == [("delegate_upsert", first, {"hq", "st"})]

    # bt added, st removed in one edit: the meeting goes to all three (st's gates learn it is no longer theirs),
    # the delegates to bt, which gained the meeting.
    before = now_seq()
    with booked_ahead(clock):
        moved = api.client.patch(f"/api/v1/meetings/{meeting['id']}", headers=AUTH,
                                 json={"remote_venue_ids": [halls[BA_TO]]})
    assert moved.status_code == 200, moved.get_json()
    assert changes_after(before) == [("meeting_upsert", meeting["id"], {"hq", "st", "bt"}),
                                     ("delegate_upsert", first, {"hq", "bt"})]

    before = now_seq()
    second = api.register(invitation, name="Trần Thị Bình", email="binh@example.vn").get_json()["id"]
    assert changes_after(before) == [("delegate_upsert", second, {"hq", "bt"})], "st never hears of them"

    before = now_seq()
    cancelled = api.post(f"/api/v1/meetings/{meeting['id']}/status", {"status": "cancelled"})
    assert cancelled.status_code == 200, cancelled.get_json()
    assert changes_after(before) == [("meeting_upsert", meeting["id"], {"hq", "bt"}),
                                     ("delegate_revoke", first, {"hq", "bt"}),
                                     ("delegate_revoke", second, {"hq", "bt"})]


def test_keys_go_to_every_site_and_a_delegate_of_an_unknown_meeting_is_revoked_everywhere(app) -> None:
    key = payloads.KeyEntry(key_id=9, public_key="A" * 43 + "=")
    assert change_sites(payloads.KeyAdd(key=key)) == {"*"}
    assert change_sites(payloads.KeyRevoke(key_id=9)) == {"*"}
    with database.connection_context():
        assert change_sites(payloads.DelegateRevoke(meeting_id=999_999, delegate_id=1)) == {"*"}, \
            "it names only ids, and a gate holding the code must hear of it"
        delegate = payloads.DelegateEntry(id=1, meeting_id=999_999, name="Ai đó", organisation="Sở",
                                          valid_from=AT, valid_until=AT)
        assert change_sites(payloads.DelegateUpsert(delegate=delegate)) == set(), "no gate can admit it"
        with database.atomic():
            change = append_change(payloads.KeyRevoke(key_id=9), AT)
        assert sites_of_changes([change.seq]) == {change.seq: {"*"}}


def test_a_venue_moved_to_another_site_reaches_both_sites_gates_at_once(api: Api, clock: Clock,
                                                                       halls: dict[str, int]) -> None:
    with booked_ahead(clock):
        meeting = api.post("/api/v1/meetings", meeting_body(halls, remote=(REMOTE,))).get_json()
    other = api.post("/api/v1/meetings", meeting_body(halls, hall=SMALL, title="Họp giao ban")).get_json()
    invitation = api.invitation(meeting["id"], api.organisation()["id"])
    delegate = api.register(invitation).get_json()["id"]

    before = now_seq()
    with database.connection_context():
        venues.update_venue(halls[REMOTE], {"site_id": "st2"}, actor="quantri", now=clock.now)
    assert changes_after(before) == [("meeting_upsert", meeting["id"], {"hq", "st", "st2"}),
                                     ("delegate_upsert", delegate, {"hq", "st2"})]
    with database.connection_context():
        (upsert,) = [c.body for c in changes_since(before) if c.body.kind == "meeting_upsert"]
    assert isinstance(upsert, payloads.MeetingUpsert) and upsert.meeting.gate_sites == ("hq", "st2")

    # The main hall moved: its meetings not yet over follow it (the other hall's meeting stays at hq).
    before = now_seq()
    with database.connection_context():
        venues.update_venue(halls[MAIN], {"site_id": "hq2"}, actor="quantri", now=clock.now)
        assert Meeting.get_by_id(meeting["id"]).site_id == "hq2"
        assert Meeting.get_by_id(other["id"]).site_id == "hq"
    assert changes_after(before) == [("meeting_upsert", meeting["id"], {"hq", "hq2", "st2"}),
                                     ("delegate_upsert", delegate, {"hq2", "st2"})]

    before = now_seq()
    with database.connection_context():
        venues.update_venue(halls[MAIN], {"name": "Hội trường lớn"}, actor="quantri", now=clock.now)
    assert changes_after(before) == [], "a new name alone changes no gate's meetings"


def test_the_fleet_compares_each_gate_with_its_own_sites_latest_change(api: Api, clock: Clock,
                                                                       halls: dict[str, int]) -> None:
    with booked_ahead(clock):
        meeting = api.post("/api/v1/meetings", meeting_body(halls, remote=(REMOTE,))).get_json()
    api.gate("g1", "hq")
    api.gate("r1", "st")
    api.gate("b1", "bt")
    with database.connection_context():
        at_both = last_seq()
    local = api.post("/api/v1/meetings", meeting_body(halls, hall=SMALL, title="Họp giao ban")).get_json()
    api.client.patch(f"/api/v1/meetings/{local['id']}", headers=AUTH, json={"title": "Họp giao ban tuần"})
    with database.connection_context():
        latest = last_seq()
        assert last_seq_of_sites(["hq", "st", "bt"]) == {"hq": latest, "st": at_both, "bt": 0}
        for gate_id, seq in (("g1", at_both), ("r1", at_both), ("b1", 0)):
            Gate.update(cache_seq=seq).where(Gate.gate_id == gate_id).execute()
        states = {state["gate_id"]: state for state in attendance.gate_states(clock.now)}
    assert latest > at_both and meeting["id"] != local["id"]
    # r1 has every change of st (the later ones were hq's only): current, though below the global sequence.
    assert (states["r1"]["cache"], states["r1"]["behind_by"], states["r1"]["current_seq"]) == ("current", 0, at_both)
    assert (states["b1"]["cache"], states["b1"]["behind_by"]) == ("current", 0)
    # g1 lacks hq's two later changes (the local meeting and its edit).
    assert (states["g1"]["cache"], states["g1"]["behind_by"], states["g1"]["current_seq"]) == ("behind", 2, latest)
