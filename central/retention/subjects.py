"""Subject access and erasure for the office: everything central stores about one person, found by e-mail
address, phone number or citizen ID (CCCD) number, exported as JSON, or anonymised everywhere.

The page, the JSON download and the command line (``vaora-central subject-export``, ``erase-person``) all call
:func:`parse_query`, :func:`find_subject`, :func:`export_subject` and :func:`erase_subject`. Both the export and
the erasure are audited (``retention.export``, ``retention.erase``) without the person's data: which identifiers
were searched and how many rows were found or changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from central.core import validation as v
from central.core.audit import audit, entry_to_dict
from central.core.changes import append_change
from central.core.db import write_transaction
from central.core.errors import InvalidInputError
from central.core.models import AuditEntry
from central.desk.models import Walkin
from central.desk.walkins import hash_id_number
from central.gates.models import CheckIn
from central.invitations.models import Invitation, Organisation
from central.meetings.models import Meeting
from central.outbound.models import MailJob
from central.outbound.worker import DELEGATE_CODE
from central.registration.delegates import delegate_entry
from central.registration.models import Delegate
from central.retention.anonymise import (
    anonymise_checkins,
    anonymise_delegates,
    anonymise_walkins,
    blank_audit_details,
    delete_mail_jobs,
)
from protocols import payloads

_ID_NUMBER = re.compile(r"\d{12}|\d{9}")
"""A CCCD has 12 digits; an old CMND 9."""


@dataclass(frozen=True)
class SubjectQuery:
    """How the office identifies the person: any of e-mail, phone (international form) and ID number."""

    email: str | None = None
    phone: str | None = None
    id_number: str | None = None

    @property
    def identifiers(self) -> list[str]:
        """The names of the identifiers given (for the audit log: never their values)."""
        return [name for name in ("email", "phone", "id_number") if getattr(self, name)]


def parse_query(data: Mapping[str, Any]) -> SubjectQuery:
    """Read ``email``, ``phone`` and ``cccd`` from a form or the command line; raises :class:`InvalidInputError`
    naming each bad field, or ``email`` when none is given."""
    errors: dict[str, str] = {}
    found: dict[str, str | None] = {}
    for name, rule in (("email", lambda raw: v.email(raw, required=False)), ("phone", v.phone)):
        try:
            found[name] = rule(data.get(name))
        except v.FieldError as exc:
            errors[name] = str(exc)
    raw_id = re.sub(r"\s+", "", str(data.get("cccd") or ""))
    if raw_id and not _ID_NUMBER.fullmatch(raw_id):
        errors["cccd"] = "Số CCCD gồm 12 chữ số (CMND cũ: 9 chữ số)"
    if not errors and not (found.get("email") or found.get("phone") or raw_id):
        errors["email"] = "Nhập email, số điện thoại hoặc số CCCD của người cần tìm"
    if errors:
        raise InvalidInputError(errors)
    return SubjectQuery(email=found.get("email"), phone=found.get("phone"), id_number=raw_id or None)


@dataclass
class Subject:
    """The rows that hold the person's data: their delegate registrations (a walk-in's one-day codes included)
    and walk-ins."""

    query: SubjectQuery
    delegates: list[Delegate] = field(default_factory=list)
    walkins: list[Walkin] = field(default_factory=list)

    @property
    def delegate_ids(self) -> list[int]:
        """Ids of :attr:`delegates`."""
        return [delegate.id for delegate in self.delegates]

    @property
    def empty(self) -> bool:
        """True when nothing is stored about the person (beyond messages to the address, if any)."""
        return not self.delegates and not self.walkins

    def audit_targets(self) -> list[str]:
        """The audit log's targets that name this person's rows."""
        return [f"delegate:{i}" for i in self.delegate_ids] + [f"walkin:{w.id}" for w in self.walkins]

    def checkins(self) -> list[CheckIn]:
        """The check-ins made with this person's codes, oldest first."""
        if not self.delegates:
            return []
        return list(CheckIn.select().where(CheckIn.delegate.in_(self.delegate_ids))
                    .order_by(CheckIn.scanned_at, CheckIn.id))

    def mail_job_condition(self) -> Any:
        """Outbound jobs that carry the person's data: sent to an address or number searched for or found on their
        registrations, or their code's mail."""
        found = [value for d in self.delegates for value in (d.email, d.phone)]
        recipients = sorted({r for r in (self.query.email, self.query.phone, *found) if r})
        condition = MailJob.recipient.in_(recipients) if recipients else None
        if self.delegates:
            mine = (MailJob.kind == DELEGATE_CODE.name) & MailJob.ref_id.in_(self.delegate_ids)
            condition = mine if condition is None else condition | mine
        return condition

    def mail_jobs(self) -> list[MailJob]:
        """The outbound jobs of :meth:`mail_job_condition`, oldest first."""
        condition = self.mail_job_condition()
        return [] if condition is None else list(MailJob.select().where(condition).order_by(MailJob.id))

    def audit_entries(self) -> list[AuditEntry]:
        """The audit entries about this person's rows, oldest first."""
        targets = self.audit_targets()
        return list(AuditEntry.select().where(AuditEntry.target.in_(targets)).order_by(AuditEntry.at, AuditEntry.id)
                    ) if targets else []


def find_subject(query: SubjectQuery, *, secret: str | bytes | None) -> Subject:
    """Everything stored about the person ``query`` identifies (anonymised rows no longer match).

    ``secret`` is the app's secret key, which the desk hashes ID numbers with; a search by ID number without it
    is refused (:class:`InvalidInputError` on ``cccd``).
    """
    subject = Subject(query)
    if query.id_number:
        if not secret:
            raise InvalidInputError({"cccd": "Không có khóa bí mật (VAORA_SECRET_KEY_FILE) để tìm theo số CCCD"})
        id_hash = hash_id_number(query.id_number, secret)
        subject.walkins = list(Walkin.select().where(Walkin.id_hash == id_hash).order_by(Walkin.id))
    conditions = []
    if query.email:
        conditions.append(Delegate.email == query.email)
    if query.phone:
        conditions.append(Delegate.phone == query.phone)
    walkin_delegates = [w.delegate_id for w in subject.walkins if w.delegate_id is not None]
    if walkin_delegates:
        conditions.append(Delegate.id.in_(walkin_delegates))
    if conditions:
        condition = conditions[0]
        for more in conditions[1:]:
            condition = condition | more
        subject.delegates = list(
            Delegate.select(Delegate, Invitation, Organisation, Meeting)
            .join(Invitation).join(Organisation).switch(Delegate).join(Meeting)
            .where(condition).order_by(Delegate.id))
    return subject


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_subject(subject: Subject, actor: str, *, now: datetime) -> dict[str, Any]:
    """Everything stored about the person as JSON-able data; audited as ``retention.export``."""
    document = {
        "exported_at": now.isoformat(),
        "searched_by": subject.query.identifiers,
        "delegates": [{
            "id": d.id, "meeting_id": d.meeting_id, "meeting": d.meeting.title,
            "meeting_starts_at": _when(d.meeting.starts_at), "organisation": d.invitation.organisation.name,
            "invitation_number": d.invitation.number, "name": d.name, "position": d.position, "email": d.email,
            "phone": d.phone, "valid_from": _when(d.valid_from), "valid_until": _when(d.valid_until),
            "revoked_at": _when(d.revoked_at), "mail_status": d.mail_status, "registered_at": _when(d.created_at),
        } for d in subject.delegates],
        "walkins": [{
            "id": w.id, "meeting_id": w.meeting_id, "full_name": w.full_name,
            "date_of_birth": w.date_of_birth.isoformat(), "sex": w.sex, "id_number_masked": w.id_masked,
            "status": w.status, "registered_at": _when(w.created_at), "registered_by": w.created_by,
            "decided_by": w.decided_by, "decided_at": _when(w.decided_at), "decision_note": w.decision_note,
            "delegate_id": w.delegate_id,
        } for w in subject.walkins],
        "checkins": [{
            "id": str(c.checkin_id), "meeting_id": c.meeting_id, "delegate_id": c.delegate_id,
            "allowed": bool(c.allowed), "reason": c.reason, "outcome": c.outcome, "direction": c.direction,
            "scanned_at": _when(c.scanned_at), "manual": bool(c.manual), "note": c.note,
        } for c in subject.checkins()],
        "messages": [{
            "kind": j.kind, "recipient": j.recipient, "status": j.status, "created_at": _when(j.created_at),
            "sent_at": _when(j.sent_at),
        } for j in subject.mail_jobs()],
        "audit": [entry_to_dict(entry) for entry in subject.audit_entries()],
    }
    with write_transaction():
        audit(actor, "retention.export", "person", {
            "by": subject.query.identifiers, "delegates": len(subject.delegates), "walkins": len(subject.walkins)},
            now=now)
    return document


def export_json(document: Mapping[str, Any]) -> bytes:
    """The export as UTF-8 JSON (Vietnamese kept readable)."""
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


def erase_subject(subject: Subject, actor: str, *, now: datetime) -> dict[str, int]:
    """Anonymise the person everywhere in one transaction; audited as ``retention.erase`` with the counts.

    Delegates and walk-ins are anonymised (meeting totals stay), their check-ins lose credential and notes, the
    audit entries about them lose their details, and their e-mail and SMS jobs are deleted. A code of a meeting
    not yet over is revoked first, and the gates get the revocation with the name blanked.
    """
    with write_transaction():
        upcoming = [d for d in subject.delegates if d.revoked_at is None and d.meeting.ends_at > now]
        for delegate in upcoming:
            delegate.revoked_at = now
            delegate.save(only=[Delegate.revoked_at])
        mail_condition = subject.mail_job_condition()
        counts = {
            "codes_revoked": len(upcoming),
            "mail_jobs_deleted": delete_mail_jobs(mail_condition) if mail_condition is not None else 0,
            "checkins_anonymised": anonymise_checkins(CheckIn.delegate.in_(subject.delegate_ids))
            if subject.delegates else 0,
            "audit_details_blanked": blank_audit_details(AuditEntry.target.in_(subject.audit_targets()))
            if not subject.empty else 0,
            "delegates_anonymised": anonymise_delegates(subject.delegate_ids),
            "walkins_anonymised": anonymise_walkins([w.id for w in subject.walkins]),
        }
        for delegate in upcoming:
            fresh = Delegate.get_by_id(delegate.id)
            append_change(payloads.DelegateUpsert(delegate=delegate_entry(fresh)), now)
            append_change(payloads.DelegateRevoke(meeting_id=fresh.meeting_id, delegate_id=fresh.id), now)
        audit(actor, "retention.erase", "person", {"by": subject.query.identifiers, **counts}, now=now)
    return counts
