"""Walk-in service: policies, refusals, one-day codes on the change stream, audit, and no ID number in clear."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from central.core.changes import changes_since
from central.core.db import database
from central.core.errors import InvalidInputError, NotFoundError
from central.core.models import AuditEntry
from central.core.validity import CLOCK_TOLERANCE, DEFAULT_GRACE_AFTER_END
from central.desk import walkins
from central.desk.cccd import parse_cccd
from central.desk.models import Walkin
from central.desk.walkins import WalkinRefusedError
from central.invitations.models import Invitation
from central.meetings.models import Meeting
from central.registration.models import Delegate
from protocols.codes import Scheme, compact_hash, short_private_key, verify_signed
from protocols.reasons import Reason

from .conftest import START, Api

ID_NUMBER = "001085012345"
CARD = f"{ID_NUMBER}|123456789|Nguyễn Thị Ánh Tuyết|15081985|Nữ|Số 1 Đinh Tiên Hoàng, Hoàn Kiếm, Hà Nội|20042021"
OTHER_CARD = "079190004321||Trần Văn Đức|01021990|Nam||"
SECRET = "desk-test-secret"
NOW = START + timedelta(minutes=30)  # 08:30 in Hà Nội on the meeting's day
GUARD = "baove"


def make_meeting(api: Api, *, policy: str = "approval", scheme: str = "compact", hours: float = 3,
                 org: str = "Sở Tài chính") -> tuple[Meeting, Invitation]:
    meeting_id = api.meeting(scheme=scheme, ends_at=(START + timedelta(hours=hours)).isoformat())["id"]
    invitation_id = api.invitation(meeting_id, api.organisation(org)["id"])["id"]
    meeting = Meeting.get_by_id(meeting_id)
    if policy != meeting.walkin_policy:
        meeting = walkins.set_policy(meeting, policy, "chuyenvien", now=NOW)
    return meeting, Invitation.get_by_id(invitation_id)


def register(meeting: Meeting, invitation: Invitation, card: str = CARD,
             now: datetime = NOW) -> Walkin:
    return walkins.register(meeting, invitation, parse_cccd(card), GUARD, secret=SECRET, now=now)


def audit_actions(target: str) -> list[tuple[str, str, dict[str, Any]]]:
    rows = AuditEntry.select().where(AuditEntry.target == target).order_by(AuditEntry.id)
    return [(row.actor, row.action, json.loads(row.details)) for row in rows]


def test_approval_policy_waits_then_approve_and_admit(api: Api, db: None) -> None:
    meeting, invitation = make_meeting(api)
    assert meeting.walkin_policy == "approval"
    walkin = register(meeting, invitation)
    assert walkin.status == "pending"
    assert (walkin.full_name, walkin.date_of_birth, walkin.sex) == ("Nguyễn Thị Ánh Tuyết", date(1985, 8, 15), "Nữ")
    assert walkin.id_masked == "********2345"
    assert walkin.created_by == GUARD and walkin.decided_by == "" and walkin.delegate is None
    assert [w.id for w in walkins.pending(meeting)] == [walkin.id]

    with pytest.raises(WalkinRefusedError) as refused:
        walkins.admit(walkin, GUARD, now=NOW)
    assert refused.value.problem == "not_approved"

    approved = walkins.approve(walkin.id, "chuyenvien", "Đại biểu thay thế", now=NOW + timedelta(minutes=1))
    assert (approved.status, approved.decided_by, approved.decision_note) == ("approved", "chuyenvien",
                                                                               "Đại biểu thay thế")
    assert walkins.pending(meeting) == []
    seq_before = max((c.seq for c in changes_since(0)), default=0)
    admitted = walkins.admit(approved, GUARD, now=NOW + timedelta(minutes=2))
    assert admitted.status == "admitted"
    delegate = admitted.delegate
    assert delegate.invitation_id == invitation.id and delegate.meeting_id == meeting.id
    assert delegate.name == "Nguyễn Thị Ánh Tuyết"
    assert delegate.code_hash == compact_hash(delegate.code)
    (change,) = changes_since(seq_before)
    assert change.body.kind == "delegate_upsert"
    assert change.body.delegate.id == delegate.id and change.body.delegate.code_hash == delegate.code_hash

    actions = audit_actions(f"walkin:{walkin.id}")
    assert [(actor, action) for actor, action, _ in actions] == [
        (GUARD, "walkin.register"), ("chuyenvien", "walkin.approve"), (GUARD, "walkin.admit")]
    assert all(details["id"] == "********2345" for _, _, details in actions)
    assert actions[2][2]["delegate"] == delegate.id


def test_direct_policy_approves_at_once(api: Api, db: None) -> None:
    meeting, invitation = make_meeting(api, policy="direct")
    walkin = register(meeting, invitation)
    assert (walkin.status, walkin.decided_by, walkin.decided_at) == ("approved", GUARD, NOW)
    assert walkins.pending(meeting) == []
    assert walkins.admit(walkin.id, GUARD, now=NOW).status == "admitted"


def test_walkin_code_lasts_until_the_meeting_end_plus_the_grace(api: Api, db: None) -> None:
    meeting, invitation = make_meeting(api, policy="direct", hours=3)
    delegate = walkins.admit(register(meeting, invitation), GUARD, now=NOW,
                             grace_after_end=timedelta(minutes=15)).delegate
    assert delegate.valid_from == NOW - CLOCK_TOLERANCE
    assert delegate.valid_until == meeting.ends_at + timedelta(minutes=15) == START + timedelta(hours=3, minutes=15)


def test_walkin_code_of_a_two_day_meeting_follows_the_meeting_not_the_day(api: Api, db: None) -> None:
    meeting, invitation = make_meeting(api, policy="direct", hours=48)
    delegate = walkins.admit(register(meeting, invitation), GUARD, now=NOW).delegate
    # Not cut at midnight in Hà Nội (2025-03-10 17:00 UTC): the meeting's end plus the default grace.
    assert delegate.valid_until == meeting.ends_at + DEFAULT_GRACE_AFTER_END
    assert delegate.valid_until > datetime(2025, 3, 10, 17, 0, tzinfo=UTC)
    with pytest.raises(WalkinRefusedError) as refused:  # the code covers the whole meeting: once per meeting
        register(meeting, invitation, now=NOW + timedelta(days=1))
    assert refused.value.problem == "already_admitted"


def test_signed_meeting_issues_a_signed_code_valid_for_the_day(app: Any, api: Api, db: None) -> None:
    meeting, invitation = make_meeting(api, policy="direct", scheme="signed")
    context = app.extensions["vaora"]
    walkin = register(meeting, invitation)
    with pytest.raises(WalkinRefusedError) as refused:
        walkins.admit(walkin, GUARD, now=NOW)  # no key given
    assert refused.value.problem == "no_signing_key"
    delegate = walkins.admit(walkin, GUARD, now=NOW, signing_key=context.signing_key).delegate
    assert Scheme.SIGNED.value == meeting.scheme and delegate.code_hash is None
    key = context.signing_key()
    result = verify_signed(delegate.code, {key.key_id: key.private_key.public_key()}, NOW,
                           {key.key_id: short_private_key(key.private_key).public_key})
    assert result.reason is Reason.OK
    assert (result.claims.meeting_id, result.claims.attendee_id) == (meeting.id, delegate.id)
    assert result.claims.valid_until == meeting.ends_at + DEFAULT_GRACE_AFTER_END


def test_refusals_carry_a_problem_and_change_nothing(api: Api, db: None) -> None:
    meeting, invitation = make_meeting(api)
    other_meeting, other_invitation = make_meeting(api, org="Sở Y tế")
    with pytest.raises(WalkinRefusedError) as refused:
        register(meeting, other_invitation)
    assert refused.value.problem == "other_meeting" and refused.value.reason is Reason.MALFORMED

    first = register(meeting, invitation)
    with pytest.raises(WalkinRefusedError) as refused:
        register(meeting, invitation)  # the same card again, still pending
    assert refused.value.problem == "already_registered"
    assert register(other_meeting, other_invitation).status == "pending", "another meeting is another visit"

    walkins.reject(first.id, "chuyenvien", "Không có tên trong danh sách", now=NOW)
    with pytest.raises(WalkinRefusedError) as refused:
        walkins.approve(first.id, "chuyenvien", now=NOW)
    assert refused.value.problem == "not_pending"
    with pytest.raises(InvalidInputError):
        walkins.reject(register(meeting, invitation).id, "chuyenvien", "   ")  # a reason is required
    with pytest.raises(NotFoundError):
        walkins.approve(999_999, "chuyenvien")

    assert Walkin.select().count() == 3
    assert Delegate.select().count() == 0


def test_same_person_admitted_today_is_refused(api: Api, db: None) -> None:
    meeting, invitation = make_meeting(api, policy="direct")
    walkins.admit(register(meeting, invitation), GUARD, now=NOW)
    with pytest.raises(WalkinRefusedError) as refused:
        register(meeting, invitation, now=NOW + timedelta(hours=1))
    assert refused.value.problem == "already_admitted" and refused.value.reason is Reason.ALREADY_INSIDE
    assert register(meeting, invitation, OTHER_CARD).status == "approved", "someone else passes"


def test_closed_and_cancelled_meetings_refuse(api: Api, db: None) -> None:
    from central.meetings import services as meetings

    meeting, invitation = make_meeting(api)
    walkin = register(meeting, invitation)
    with pytest.raises(WalkinRefusedError) as refused:
        register(meeting, invitation, OTHER_CARD, now=meeting.ends_at)
    assert refused.value.problem == "meeting_closed"
    meetings.set_status(meeting.id, "cancelled", NOW, actor="chuyenvien")
    with pytest.raises(WalkinRefusedError) as refused:
        walkins.approve(walkin.id, "chuyenvien", now=NOW)
    assert refused.value.problem == "meeting_closed" and refused.value.reason is Reason.MEETING_CANCELLED
    assert walkins.get(walkin.id).status == "pending"


def test_policy_is_validated_and_audited(api: Api, db: None) -> None:
    meeting, _ = make_meeting(api)
    with pytest.raises(InvalidInputError):
        walkins.set_policy(meeting, "sometimes", "chuyenvien")
    updated = walkins.set_policy(meeting, "direct", "chuyenvien", now=NOW)
    assert updated.walkin_policy == "direct"
    (entry,) = audit_actions(f"meeting:{meeting.id}")[-1:]
    assert entry == ("chuyenvien", "meeting.walkin_policy", {"from": "approval", "to": "direct"})


def test_same_person_same_hash_other_secret_other_hash() -> None:
    assert walkins.hash_id_number(ID_NUMBER, SECRET) == walkins.hash_id_number(ID_NUMBER, SECRET.encode())
    assert walkins.hash_id_number(ID_NUMBER, SECRET) != walkins.hash_id_number(ID_NUMBER, "another")
    assert ID_NUMBER not in walkins.hash_id_number(ID_NUMBER, SECRET)


def test_id_number_and_address_never_stored_nor_logged(api: Api, db: None, central_config: dict[str, Any],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    url = central_config["VAORA_DATABASE_URL"]
    if not url.startswith("sqlite:"):
        pytest.skip("reads the SQLite file")
    caplog.set_level(logging.DEBUG)
    meeting, invitation = make_meeting(api, policy="approval")
    walkin = register(meeting, invitation)
    walkins.approve(walkin.id, "chuyenvien", now=NOW)
    walkins.admit(walkin.id, GUARD, now=NOW)
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    path = Path(url.split(":///", 1)[1])
    stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert b"2345" in stored, "the masked form is stored"
    assert ID_NUMBER.encode() not in stored
    assert "Đinh Tiên Hoàng".encode() not in stored
    assert "Nguyễn Thị Ánh Tuyết".encode() in stored
    assert ID_NUMBER not in caplog.text and "********2345" in caplog.text


def test_find_invitations_by_number_or_organisation_without_accents(api: Api, db: None) -> None:
    meeting, invitation = make_meeting(api, org="Sở Tài chính")
    _, other = make_meeting(api, org="Sở Xây dựng")
    found = walkins.find_invitations("tai chinh", NOW)
    assert [i.id for i in found] == [invitation.id]
    assert [i.id for i in walkins.find_invitations(invitation.number, NOW)] == [invitation.id]
    assert [i.id for i in walkins.find_invitations("Sở", NOW, meeting_id=meeting.id)] == [invitation.id]
    assert walkins.find_invitations("  ", NOW) == []
    assert walkins.find_invitations("xay dung", NOW - timedelta(days=3)) == [], "not a meeting of that day"
    assert {m.id for m in walkins.meetings_today(NOW)} == {meeting.id, other.meeting_id}


def test_moving_the_meeting_keeps_a_walkins_one_day_code_and_never_mails_it(api: Api, db: None) -> None:
    from central.meetings.services import update_meeting

    meeting, invitation = make_meeting(api, policy="direct", hours=3)
    walkin_delegate = walkins.admit(register(meeting, invitation), GUARD, now=NOW).delegate
    mailed: list[int] = []
    update_meeting(meeting.id, {"ends_at": (START + timedelta(hours=4)).isoformat()}, NOW, actor="chuyenvien",
                   reissue=lambda d: mailed.append(d.id))
    kept = Delegate.get_by_id(walkin_delegate.id)
    assert walkin_delegate.id not in mailed
    assert (kept.code, kept.mail_status, kept.valid_until) == (walkin_delegate.code, "desk",
                                                               walkin_delegate.valid_until)


class _Publisher:
    """Keeps the published commands (the broker itself is exercised in test_gate_commands_service)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.sent.append((topic, payload, qos))


def _admitted(api: Api, **meeting: Any) -> Walkin:
    meeting_row, invitation = make_meeting(api, policy="direct", **meeting)
    return walkins.admit(register(meeting_row, invitation), GUARD, now=NOW)


def _open(walkin: Walkin, publisher: _Publisher, at: datetime = NOW) -> Any:
    from central.gates import commands as gate_commands

    return gate_commands.issue("lobby-1", "open", GUARD, delegate_id=walkin.delegate_id, publisher=publisher,
                               valid_at=at)


def test_a_walkins_remote_open_works_once_per_admission(api: Api, db: None) -> None:
    from central.gates import commands as gate_commands
    from protocols.payloads import CommandResult

    api.gate("lobby-1")
    walkin = _admitted(api)
    publisher = _Publisher()
    refused_first = _open(walkin, publisher)
    # The gate answers "failed" (e.g. locked down): it did not open, so the guard may try again.
    gate_commands.record_result(CommandResult(command_id=refused_first.command_id, gate_id="lobby-1", ok=False,
                                              reason=Reason.LOCKED_DOWN.value))
    opened = _open(walkin, publisher, NOW + timedelta(minutes=1))
    assert opened.status == "sent" and len(publisher.sent) == 2
    for answered in (None, "ok"):  # unanswered (the gate may still open) or done: the open is used up
        if answered:
            gate_commands.record_result(CommandResult(command_id=opened.command_id, gate_id="lobby-1", ok=True))
        with pytest.raises(WalkinRefusedError) as again:
            _open(walkin, publisher, NOW + timedelta(minutes=2))
        assert (again.value.problem, again.value.reason) == ("already_opened", Reason.ALREADY_INSIDE)
    assert len(publisher.sent) == 2, "nothing is sent for a refused open"
    assert _commands_of(walkin) == 2


def _commands_of(walkin: Walkin) -> int:
    from central.gates.models import GateCommand

    return GateCommand.select().where(GateCommand.delegate_id == walkin.delegate_id).count()


def test_a_walkins_remote_open_only_within_the_codes_validity(api: Api, db: None) -> None:
    api.gate("lobby-1")
    walkin = _admitted(api, hours=3)
    delegate = Delegate.get_by_id(walkin.delegate_id)
    publisher = _Publisher()
    for at, problem in ((delegate.valid_from - timedelta(seconds=1), "not_yet_valid"),
                        (delegate.valid_until, "expired"), (START + timedelta(days=1), "expired")):
        with pytest.raises(WalkinRefusedError) as refused:
            _open(walkin, publisher, at)
        assert refused.value.problem == problem
    Delegate.update(revoked_at=NOW).where(Delegate.id == delegate.id).execute()
    with pytest.raises(WalkinRefusedError) as revoked:
        _open(walkin, publisher)
    assert revoked.value.problem == "revoked"
    assert publisher.sent == [] and _commands_of(walkin) == 0


def test_two_guards_opening_for_one_walkin_at_once_open_once(api: Api, db: None) -> None:
    import threading

    api.gate("lobby-1")
    walkin = _admitted(api)
    publisher = _Publisher()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def guard() -> None:
        with database.connection_context():
            barrier.wait()
            try:
                _open(walkin, publisher)
                outcomes.append("sent")
            except WalkinRefusedError as exc:
                outcomes.append(exc.problem)

    threads = [threading.Thread(target=guard) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["already_opened"] * 3 + ["sent"]
    assert len(publisher.sent) == 1
