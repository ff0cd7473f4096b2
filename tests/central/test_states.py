"""The stored states are enums (``central.core.states``): what the models store, their labels, and a guard.

The guard greps central's Python modules and templates for a state spelled as a bare string in a comparison,
a group, a default or an assignment, so a new ``== "cancelled"`` fails here with its file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import peewee
import pytest
from flask import Flask
from flask_babel import force_locale

from central.core.states import (
    ALL_STATES,
    CommandState,
    DelegateMailState,
    GateLinkState,
    GateMode,
    InvitationState,
    MeetingState,
    State,
    WalkinState,
)
from central.desk.models import Walkin
from central.gates.models import Gate, GateCommand
from central.invitations.models import Invitation
from central.meetings import services as meetings
from central.meetings.models import Meeting
from central.registration.models import Delegate
from central.web.i18n import LANGUAGES

CENTRAL = Path(__file__).resolve().parents[2] / "central"

STORED: list[tuple[peewee.Field, type[State]]] = [
    (Meeting.status, MeetingState),
    (Invitation.status, InvitationState),
    (Delegate.mail_status, DelegateMailState),
    (Walkin.status, WalkinState),
    (Gate.state, GateLinkState),
    (Gate.mode, GateMode),
    (GateCommand.status, CommandState),
]
"""Each state column and the enum its values come from."""


def test_every_state_column_defaults_to_a_member() -> None:
    for field, enum in STORED:
        if field.default is not None:
            assert field.default in set(enum), f"{field.model.__name__}.{field.name}: {field.default!r}"
            assert isinstance(field.default, enum)


def test_meeting_transitions_name_every_state_and_only_states() -> None:
    assert set(meetings.TRANSITIONS) == set(MeetingState)
    assert all(isinstance(target, MeetingState) for targets in meetings.TRANSITIONS.values() for target in targets)


def test_values_stored_by_a_whole_flow_are_members(api: Any, db: None) -> None:
    invitation = api.invitation()
    assert api.register(invitation).status_code == 201
    api.gate("g1")
    meeting_id = invitation["meeting_id"]
    meetings.set_status(meeting_id, MeetingState.CANCELLED.value, Meeting.get_by_id(meeting_id).starts_at,
                        actor="test")
    seen = 0
    for field, enum in STORED:
        values = {row[0] for row in field.model.select(field).distinct().tuples() if row[0] is not None}
        assert values <= {member.value for member in enum}, f"{field.model.__name__}.{field.name}: {values}"
        seen += len(values)
    assert seen >= 4  # the flow stored a meeting, an invitation, a delegate and a gate state


@pytest.mark.parametrize("enum", ALL_STATES, ids=lambda enum: enum.__name__)
def test_every_member_has_a_vietnamese_and_an_english_label(app: Flask, enum: type[State]) -> None:
    assert set(LANGUAGES) == {"vi", "en"}
    with app.test_request_context("/"):
        for member in enum:
            with force_locale("vi"):
                vietnamese = str(member.label)
            with force_locale("en"):
                english = str(member.label)
            assert vietnamese == member.vi == member.text("vi") and not vietnamese.isascii(), member
            assert english == member.text("en") and english and english != vietnamese, member
            assert english.isascii(), (member, english)


def test_groups_are_members_of_their_enum() -> None:
    assert {InvitationState.APPROVED, InvitationState.SENT} == InvitationState.REGISTERABLE
    assert {MeetingState.HELD, MeetingState.CANCELLED} == MeetingState.FINAL
    assert {DelegateMailState.PENDING, DelegateMailState.FAILED} == DelegateMailState.UNSENT
    assert set(CommandState) == CommandState.ANSWERED | CommandState.AWAITING


def test_states_match_the_wire_values() -> None:
    from typing import get_args

    from protocols import payloads

    assert {member.value for member in payloads.GateMode} == {member.value for member in GateMode}
    assert set(get_args(payloads.GateStatus.model_fields["state"].annotation)) <= {m.value for m in GateLinkState}


# ------------------------------------------------------------------------------------------------- the guard

VALUES = "|".join(sorted({member.value for enum in ALL_STATES for member in enum}))
# "open", "lockdown" and "release" are also the names of gate command *actions* (protocols.payloads.COMMAND_ACTIONS,
# e.g. ``action != "open"``), which are not states: only a status, state or mode compared with them is flagged.
ANY_SIDE = "|".join(sorted(set(VALUES.split("|")) - {"open", "lockdown", "release"}))
BARE = [
    # target == 'cancelled', outcome != "failed": whatever is on the left
    re.compile(rf"""(==|!=)\s*["']({ANY_SIDE})["']"""),
    # meeting.status == "cancelled", x.state != 'online', status in ("approved", "sent"), .status.in_(["sent"])
    re.compile(rf"""\b(status|state|mode)\b[^\n]*?(==|!=|\bin\b|\bin_\()\s*[(\[]?\s*["']({VALUES})["']"""),
    # a group spelled out: in ("approved", "sent"), not in ('cancelled', 'held')
    re.compile(rf"""\bin_?\(?\s*[(\[]\s*["']({VALUES})["']"""),
    # status="sent", "status": "draft", state = "online"
    re.compile(rf"""\b(status|state|mode)["']?\s*[:=]\s*["']({VALUES})["']"""),
    # peewee.CharField(default="open")
    re.compile(rf"""\bdefault=["']({VALUES})["']"""),
]
EXCLUDED = {
    "core/states.py",  # the one place the values are spelled
    "outbound/sms.py",  # an SMS gateway's error codes ("timeout", ...), not states of ours
}


def bare_states() -> list[str]:
    """Each ``file:line: text`` of central that spells a state of the enums as a bare string."""
    found = []
    for path in sorted([*CENTRAL.rglob("*.py"), *CENTRAL.rglob("*.html")]):
        name = path.relative_to(CENTRAL).as_posix()
        if name in EXCLUDED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if any(pattern.search(line) for pattern in BARE):
                found.append(f"central/{name}:{number}: {line.strip()}")
    return found


def test_no_state_is_spelled_as_a_bare_string_outside_its_enum() -> None:
    assert bare_states() == []


def test_the_guard_catches_a_bare_state() -> None:
    for line in ('if meeting.status == "cancelled":', "{% if target == 'cancelled' %}",
                 "{% if w.status in ('approved', 'admitted') %}",
                 'x = invitation.status not in ("approved", "sent")', 'row = Cmd.create(status="sent")',
                 'GateCommand.status.in_(["sent", "timeout"])', 'status = peewee.CharField(default="open")'):
        assert any(pattern.search(line) for pattern in BARE), line
    for line in ('if action != "open":', 'flash(message, "error")', 'return {"ok": True}', 'cache = "unknown"'):
        assert not any(pattern.search(line) for pattern in BARE), line
