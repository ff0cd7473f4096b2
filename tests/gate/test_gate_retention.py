"""The gate forgets what it no longer needs: the passages (anti-passback entries), the meeting and its delegates'
names once a meeting ended more than ``[outbox] keep_delivered_hours`` ago, beside the delivered outbox rows; a
meeting still on keeps them. Time is an injected clock."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from gate.service import OutboxRetention
from gate.store import GateStore
from gate.store.passages import signed_credential_meeting
from protocols.codes import compact_hash
from protocols.payloads import Change, Direction, MeetingUpsert
from tests.gate.gate_helpers import NOW, build_world

MEETING_END = NOW + timedelta(hours=3)  # every meeting of build_world()
KEEP = timedelta(hours=72)


class Clock:
    """An aware UTC clock the test sets by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_signed_credentials_name_their_meeting() -> None:
    assert signed_credential_meeting("signed:7:2:7001") == 2
    assert signed_credential_meeting("ab" * 32) is None
    assert signed_credential_meeting("signed:7:x:1") is None


def test_passages_of_ended_meetings_are_pruned_and_those_of_a_running_meeting_stay(tmp_path: Path) -> None:
    world = build_world()
    store = GateStore(tmp_path)
    store.load_snapshot(world.snapshot, NOW)
    running = next(m for m in world.snapshot.meetings if m.id == 4).model_copy(
        update={"ends_at": NOW + timedelta(days=30)})
    store.apply_change(Change(seq=world.snapshot.seq + 1, at=NOW, body=MeetingUpsert(meeting=running)), NOW)
    compact = compact_hash(world.codes[1])  # meeting 1
    signed = "signed:7:2:7001"  # meeting 2
    other_running = compact_hash(world.codes[9004])  # meeting 4, on for a month
    unknown = "f" * 64  # a code the cache no longer holds (its meeting left the snapshot)
    for credential in (compact, signed, other_running, unknown):
        assert store.record_passage(credential, str(uuid.uuid4()), NOW, Direction.IN, "g1")
    assert store.passages() == 4

    clock = Clock(MEETING_END + KEEP - timedelta(minutes=1))
    retention = OutboxRetention(store, keep=KEEP, clock=clock, every=timedelta(hours=1))
    # The unknown code's passage is older than 72 h already (it was at NOW, 3 h before the meetings ended).
    assert retention.tick() == 1
    assert not store.has_entered(unknown)
    assert store.has_entered(compact) and store.has_entered(signed) and store.has_entered(other_running)
    assert store.meeting(1) is not None and store.lookup_code_hash(compact) is not None

    clock.now = MEETING_END + KEEP + timedelta(hours=1)  # the next hourly run
    assert retention.tick() == 2
    assert not store.has_entered(compact) and not store.has_entered(signed)
    assert store.has_entered(other_running), "meeting 4 is still on: its passages are anti-passback's memory"
    assert store.passages() == 1
    # The ended meetings and their delegates' names went too, as a new snapshot would leave them out.
    assert store.meeting(1) is None and store.lookup_code_hash(compact) is None and store.delegate(2, 7001) is None
    assert store.meeting(4) is not None and store.lookup_code_hash(other_running) is not None

    clock.now = NOW + timedelta(days=40)
    assert retention.tick() == 1 and store.passages() == 0
    store.close()
