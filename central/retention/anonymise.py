"""The rules that strip personal data from rows, shared by the purge (rows past retention) and the per-person
erasure (one person's rows): one rule per kind of row, each idempotent and returning how many rows it changed.

Rows that counts depend on are anonymised, not deleted: a delegate keeps its meeting, invitation (so its
organisation) and revocation, a counted entry keeps its delegate, time and gate, so the attendance totals,
statistics and exports of an old meeting stay what they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import peewee

from central.core.db import tuples
from central.core.models import AuditEntry
from central.desk.models import Walkin
from central.gates.models import CheckIn
from central.outbound.models import MailJob
from central.registration.models import Delegate

ANONYMOUS_NAME = "(ẩn danh)"
"""What an anonymised delegate's or walk-in's name reads."""
UNKNOWN_BIRTH_DATE = date(1900, 1, 1)
"""An anonymised walk-in's date of birth (the column is required; this date means "not kept")."""
EMPTY_DETAILS = "{}"


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def anonymise_delegates(ids: Iterable[int]) -> int:
    """Blank name, position, e-mail, phone, code and mail error of the delegates ``ids`` not yet anonymised.

    The row stays (meeting, invitation, credential hash, validity, revocation): it is still counted as expected,
    and present when a kept entry points at it.
    """
    changed = 0
    for chunk in _chunks(sorted(set(ids))):
        changed += (
            Delegate.update(name=ANONYMOUS_NAME, position="", email="", phone=None, code="", mail_error=None)
            .where(Delegate.id.in_(chunk) & (Delegate.name != ANONYMOUS_NAME))
            .execute()
        )
    return changed


def anonymise_walkins(ids: Iterable[int]) -> int:
    """Blank name, date of birth, sex, ID number hash and masked number and the decision note of the walk-ins
    ``ids`` not yet anonymised, and anonymise the one-day codes they were given. Status and times stay."""
    wanted = sorted(set(ids))
    changed = 0
    delegates: list[int] = []
    for chunk in _chunks(wanted):
        delegates += [row[0] for row in tuples(
            Walkin.select(Walkin.delegate).where(Walkin.id.in_(chunk) & Walkin.delegate.is_null(False)))]
        changed += (
            Walkin.update(full_name=ANONYMOUS_NAME, date_of_birth=UNKNOWN_BIRTH_DATE, sex="", id_hash="",
                          id_masked="", decision_note="")
            .where(Walkin.id.in_(chunk) & (Walkin.id_hash != ""))
            .execute()
        )
    anonymise_delegates(delegates)
    return changed


def _holds_personal_data() -> peewee.Expression:
    return (CheckIn.credential.is_null(False) | CheckIn.note.is_null(False) | CheckIn.operator.is_null(False)
            | CheckIn.command_id.is_null(False))


def anonymise_checkins(condition: peewee.Expression) -> int:
    """Clear the credential, the organiser's note, the operator and the command of the check-ins matching
    ``condition`` (delegate, meeting, gate, time and outcome stay, so they still count)."""
    return (
        CheckIn.update(credential=None, note=None, operator=None, command_id=None)
        .where(condition & _holds_personal_data())
        .execute()
    )


def _counted_entry() -> peewee.Expression:
    return (CheckIn.delegate.is_null(False) & (CheckIn.allowed == True)  # noqa: E712 - peewee expression
            & (CheckIn.outcome == "entered") & (CheckIn.direction == "in"))


def thin_checkins(meeting_ids: list[int]) -> tuple[int, int]:
    """Cut the check-ins of ``meeting_ids`` to what the statistics count: each delegate's first entry (as
    :func:`central.attendance.services.meeting_attendance` picks it), anonymised. Refusals, exits and later
    entries are deleted. Returns (deleted, anonymised)."""
    deleted = anonymised = 0
    for chunk in _chunks(sorted(set(meeting_ids)), 100):
        entries = tuples(
            CheckIn.select(CheckIn.id, CheckIn.meeting, CheckIn.delegate)
            .where(CheckIn.meeting.in_(chunk) & _counted_entry())
            .order_by(CheckIn.scanned_at, CheckIn.id)
        )
        first: dict[tuple[int, int], int] = {}
        for row_id, meeting_id, delegate_id in entries:
            first.setdefault((meeting_id, delegate_id), row_id)
        keep = set(first.values())
        doomed = [row[0] for row in tuples(CheckIn.select(CheckIn.id).where(CheckIn.meeting.in_(chunk)))
                  if row[0] not in keep]
        for ids in _chunks(doomed):
            deleted += CheckIn.delete().where(CheckIn.id.in_(ids)).execute()
        anonymised += anonymise_checkins(CheckIn.meeting.in_(chunk))
    return deleted, anonymised


def blank_audit_details(condition: peewee.Expression) -> int:
    """Replace the details of the audit entries matching ``condition`` with ``{}`` (actor, action, target and
    time stay)."""
    return (
        AuditEntry.update(details=EMPTY_DETAILS)
        .where(condition & (AuditEntry.details != EMPTY_DETAILS))
        .execute()
    )


def delete_mail_jobs(condition: peewee.Expression) -> int:
    """Delete the outbound jobs matching ``condition`` (their addresses, codes and links go with them)."""
    return MailJob.delete().where(condition).execute()
