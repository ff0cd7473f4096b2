"""Every code's validity window follows its meeting, not the calendar day: across midnight, up to the end + grace.

A walk-in admitted at 23:52 in Hà Nội for a meeting from 23:00 to 02:50 gets a code that a real gate (its cache
loaded from central's snapshot, :func:`gate.decision.decide`) admits at 00:30 and 02:40, and refuses once the
meeting's end plus the configured grace (``VAORA_GRACE_AFTER_END_MIN``) has passed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.validity import CLOCK_TOLERANCE, CodeValidity
from central.desk import walkins
from central.desk.cccd import parse_cccd
from central.invitations.models import Invitation
from central.meetings.models import Meeting
from central.registration.models import Delegate
from gate.decision import decide
from gate.store import GateStore
from protocols.payloads import Snapshot, decode
from protocols.reasons import Reason

from .conftest import Api, Clock

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
STARTS = datetime(2025, 3, 10, 23, 0, tzinfo=HANOI)
ENDS = datetime(2025, 3, 11, 2, 50, tzinfo=HANOI)
ISSUED = datetime(2025, 3, 10, 23, 52, tzinfo=HANOI)
GRACE = timedelta(minutes=20)
CARD = "001085012345|123456789|Nguyễn Thị Ánh Tuyết|15081985|Nữ|Số 1 Đinh Tiên Hoàng, Hà Nội|20042021"


@pytest.fixture
def central_config(central_config: dict[str, Any]) -> dict[str, Any]:
    """The usual test app with a 20-minute grace after a meeting's end."""
    return {**central_config, "VAORA_GRACE_AFTER_END_MIN": "20"}


def test_the_window_is_the_meetings_plus_the_grace_whatever_the_day() -> None:
    validity = CodeValidity(entry_opens_before=timedelta(hours=2), grace_after_end=GRACE)
    assert validity.window(STARTS, ENDS) == (STARTS - timedelta(hours=2), ENDS + GRACE)
    assert validity.window(STARTS, ENDS, issued_at=ISSUED) == (ISSUED - CLOCK_TOLERANCE, ENDS + GRACE)


def _snapshot_into(client: FlaskClient, token: str, store: GateStore, now: datetime) -> None:
    response = client.get("/api/v1/gates/g1/snapshot", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    store.load_snapshot(decode(Snapshot, response.data), now)


@pytest.mark.parametrize("scheme", ["compact", "signed"])
def test_a_walkin_code_issued_at_23_52_admits_past_midnight_until_the_end_plus_grace(
        app: Flask, client: FlaskClient, api: Api, db: None, clock: Clock, tmp_path: Path, scheme: str) -> None:
    meeting_id = api.meeting(scheme=scheme, starts_at=STARTS.isoformat(), ends_at=ENDS.isoformat())["id"]
    invitation = Invitation.get_by_id(api.invitation(meeting_id)["id"])
    meeting = walkins.set_policy(Meeting.get_by_id(meeting_id), "direct", "chuyenvien", now=ISSUED)
    token = api.gate("g1", site_id="hq")
    context = app.extensions["vaora"]
    assert context.code_validity.grace_after_end == GRACE

    clock.now = ISSUED
    walkin = walkins.register(meeting, invitation, parse_cccd(CARD), "baove", secret="s" * 32, now=ISSUED)
    walkin = walkins.admit(walkin, "baove", now=ISSUED, signing_key=context.signing_key,
                           grace_after_end=context.code_validity.grace_after_end)
    delegate = Delegate.get_by_id(walkin.delegate_id)
    assert delegate.valid_until == ENDS + GRACE, "the meeting's end plus the grace, not midnight"

    store = GateStore(tmp_path / "gate")
    try:
        _snapshot_into(client, token, store, ISSUED)
        for local in (datetime(2025, 3, 11, 0, 30, tzinfo=HANOI), datetime(2025, 3, 11, 2, 40, tzinfo=HANOI),
                      ENDS + GRACE):
            decision = decide(delegate.code, store, local, "hq")
            assert (decision.allowed, decision.reason, decision.delegate_id) == (True, Reason.OK, delegate.id), local
        # A gate that re-syncs after the end, within the grace, still knows the meeting.
        clock.now = ENDS + GRACE / 2
        _snapshot_into(client, token, store, clock.now)
        assert decide(delegate.code, store, clock.now, "hq").allowed
        refused = decide(delegate.code, store, ENDS + GRACE + timedelta(seconds=1), "hq")
        assert (refused.allowed, refused.reason) == (False, Reason.EXPIRED)
    finally:
        store.close()
    assert walkins.today(datetime(2025, 3, 11, 0, 30, tzinfo=HANOI)) == [walkin], "still on the desk after midnight"
