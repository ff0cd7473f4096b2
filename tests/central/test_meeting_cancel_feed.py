"""Cancelling a meeting on central's change stream: the gates learn the meeting is cancelled before any of the
revocations that come with it, so a gate following the stream refuses its codes as ``meeting_cancelled``."""

from __future__ import annotations

from typing import Any

from central.core.changes import changes_since
from central.core.states import MeetingState
from central.meetings import services as meetings
from central.meetings.models import Meeting
from protocols.payloads import DelegateRevoke, MeetingUpsert


def test_the_cancelled_status_goes_out_before_the_revocations(api: Any, db: None) -> None:
    invitation = api.invitation()
    for email in ("a@example.vn", "b@example.vn"):
        assert api.register(invitation, email=email).status_code == 201
    meeting_id = invitation["meeting_id"]
    before = max((change.seq for change in changes_since(0, limit=100_000)), default=0)
    meetings.set_status(meeting_id, MeetingState.CANCELLED.value, Meeting.get_by_id(meeting_id).starts_at,
                        actor="test")
    bodies = [change.body for change in changes_since(before)]
    revokes = [i for i, body in enumerate(bodies) if isinstance(body, DelegateRevoke)]
    cancelled = [i for i, body in enumerate(bodies)
                 if isinstance(body, MeetingUpsert) and body.meeting.id == meeting_id
                 and body.meeting.status == MeetingState.CANCELLED.value]
    assert len(revokes) == 2 and cancelled
    assert cancelled[0] < min(revokes)
