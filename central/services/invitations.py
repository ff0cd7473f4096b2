"""Invitations: numbering per year ("Số thư mời", e.g. ``125/TM-UBND``) and the registration secret.

The secret is returned once, at creation; only its SHA-256 is stored and it is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import peewee

from central import models
from central.db import write_transaction
from central.services import validation as v
from central.services.errors import ConflictError, NotFoundError
from protocols.reasons import Reason

log = logging.getLogger(__name__)

REGISTER_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
"""The register's year follows local time in Vietnam."""

MAX_NUMBERING_ATTEMPTS = 20
_DUMMY_HASH = hashlib.sha256(b"vaora-no-such-invitation").hexdigest()


@dataclass(frozen=True)
class IssuedInvitation:
    """A new invitation and its secret (the only time the secret exists in clear)."""

    invitation: models.Invitation
    secret: str


def hash_secret(secret: str) -> str:
    """Return the stored form of an invitation secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def format_number(fmt: str, seq: int, year: int) -> str:
    """Return the invitation number for ``seq`` in ``year`` using the configured format."""
    return fmt.format(seq=seq, year=year)


def create_invitation(
    data: Mapping[str, Any], now: datetime, number_format: str = "{seq}/TM-UBND"
) -> IssuedInvitation:
    """Number and store an invitation of ``organisation_id`` to ``meeting_id``.

    The sequence is the next one in the year's register. Two concurrent requests cannot get the same
    number: the (year, seq) and number columns are unique, and a losing insert retries with the next seq.
    """
    fields = v.FieldCollector(data)
    meeting_id = fields.take("meeting_id", v.positive_int)
    organisation_id = fields.take("organisation_id", v.positive_int)
    meeting = organisation = None
    if meeting_id is not None:
        meeting = models.Meeting.get_or_none(models.Meeting.id == meeting_id)
        if meeting is None:
            fields.add("meeting_id", "Không tìm thấy cuộc họp")
    if organisation_id is not None:
        organisation = models.Organisation.get_or_none(models.Organisation.id == organisation_id)
        if organisation is None:
            fields.add("organisation_id", "Không tìm thấy đơn vị")
    fields.raise_if_any()
    if meeting.status == "cancelled":
        raise ConflictError(Reason.MEETING_CANCELLED)

    year = now.astimezone(REGISTER_TZ).year
    secret = secrets.token_urlsafe(24)
    for attempt in range(MAX_NUMBERING_ATTEMPTS):
        try:
            with write_transaction():
                last = (
                    models.Invitation.select(peewee.fn.MAX(models.Invitation.seq))
                    .where(models.Invitation.year == year)
                    .scalar()
                )
                seq = (last or 0) + 1
                invitation = models.Invitation.create(
                    meeting=meeting,
                    organisation=organisation,
                    number=format_number(number_format, seq, year),
                    year=year,
                    seq=seq,
                    secret_hash=hash_secret(secret),
                    created_at=now,
                )
            log.info("invitation numbered number=%s tries=%d", invitation.number, attempt + 1)
            return IssuedInvitation(invitation=invitation, secret=secret)
        except peewee.IntegrityError:
            log.info("invitation number taken, retrying year=%s attempt=%d", year, attempt)
    raise ConflictError(Reason.INTERNAL_ERROR, "Không cấp được số thư mời, vui lòng thử lại")


def find_invitation(number: str, secret: str | None) -> models.Invitation:
    """Return the invitation with ``number`` whose secret matches, else raise :class:`NotFoundError`.

    Numbers recur from year to year (the register restarts), so the secret picks among them. An unknown
    number and a wrong secret raise the same error, after the same constant-time comparisons.
    """
    candidates: list[models.Invitation] = []
    if isinstance(number, str) and len(number) <= 64:
        candidates = list(models.Invitation.select().where(models.Invitation.number == number))
    given = hash_secret(secret) if isinstance(secret, str) else ""
    found = None
    for invitation in candidates or [None]:
        stored = invitation.secret_hash if invitation is not None else _DUMMY_HASH
        if hmac.compare_digest(stored, given) and invitation is not None:
            found = invitation
    if found is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy thư mời hoặc mã bí mật không đúng")
    return found


def registration_url(public_url: str, number: str, secret: str) -> str:
    """Return the link an organisation opens to register its delegates."""
    return f"{public_url}/registration/{quote(number, safe='/')}?secret={quote(secret, safe='')}"


def invitation_to_dict(invitation: models.Invitation) -> dict[str, Any]:
    """Return the JSON form of an invitation (never its secret)."""
    return {
        "id": invitation.id,
        "number": invitation.number,
        "year": invitation.year,
        "seq": invitation.seq,
        "meeting_id": invitation.meeting_id,
        "organisation_id": invitation.organisation_id,
        "created_at": invitation.created_at.isoformat(),
    }
