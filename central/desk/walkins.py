"""Walk-ins at the guard desk: register a visitor from their CCCD, approve or reject, admit with a one-day code.

A walk-in belongs to one meeting and comes under one of its invitations (the organisation that sent them).
Per meeting, ``Meeting.walkin_policy`` says whether a registered walk-in passes at once (``direct``: approved
on registration) or waits for an organiser (``approval``: pending). Admitting an approved walk-in issues a
walk-in code: a :class:`central.Delegate` under the invitation, valid from now (less a minute of clock
tolerance) until the meeting ends plus the configured grace (:class:`central.core.validity.CodeValidity`, the
rule every code follows: the meeting, not the calendar day, so a code issued at 23:52 for a meeting ending at
02:50 lasts past midnight), in the meeting's code scheme, and appended to the change stream so every gate
admits it. A person is admitted at most once per meeting. A guard may open a gate remotely for an admitted
walk-in once per admission, while the one-day code is valid (:func:`check_remote_open`).

Personal data: the 12-digit ID number is kept only as an HMAC (``id_hash``, keyed with the app secret) and a
masked form (``id_masked``); the address is dropped. Logs and audit details carry the masked number only.
Every step is audited with the actor; refusals raise :class:`WalkinRefusedError` with a ``problem`` code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from central.core import validation as v
from central.core.audit import audit
from central.core.db import write_transaction
from central.core.errors import ConflictError, InvalidInputError, NotFoundError
from central.core.keys import ActiveKey
from central.core.states import CommandState, DelegateMailState, InvitationState, MeetingState, WalkinState
from central.core.validity import DEFAULT_ENTRY_OPENS_BEFORE, DEFAULT_GRACE_AFTER_END, CodeValidity
from central.desk.cccd import CccdRecord
from central.desk.models import Walkin
from central.invitations.models import Invitation, Organisation
from central.meetings.models import Meeting
from central.registration.models import Delegate
from protocols.codes import Scheme
from protocols.meeting_days import DAY_STARTS_AT, MEETING_TZ, meeting_date
from protocols.reasons import Reason

log = logging.getLogger(__name__)

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
POLICIES = ("direct", "approval")
DEFAULT_POLICY = "approval"
STATUSES = tuple(WalkinState)
WALKIN_POSITION = "Khách đăng ký tại bàn tiếp đón"
"""The ``position`` shown for a walk-in's delegate (on the gate display and the attendance list)."""
MAX_NOTE = 500


class WalkinRefusedError(ConflictError):
    """A walk-in step refused by the current state; ``problem`` names it (e.g. ``not_pending``)."""

    def __init__(self, problem: str, reason: Reason, message: str) -> None:
        self.problem = problem
        super().__init__(reason, message)


def hash_id_number(id_number: str, secret: str | bytes) -> str:
    """Return the HMAC-SHA256 (hex) of an ID number keyed with ``secret``: same person, same hash."""
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise ValueError("an HMAC key is required to hash ID numbers")
    return hmac.new(key, id_number.encode("ascii"), hashlib.sha256).hexdigest()


def local_day_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Return the start and end (exclusive) of ``now``'s meeting day (04:00 to 04:00 Hà Nội time, the rule of
    :mod:`protocols.meeting_days`), as aware datetimes: at 23:40 and at 01:00 the desk is on the same day."""
    start = datetime.combine(meeting_date(now), DAY_STARTS_AT, tzinfo=MEETING_TZ)
    return start, start + timedelta(days=1)


def walkin_window(meeting: Meeting, now: datetime, grace_after_end: timedelta = DEFAULT_GRACE_AFTER_END
                  ) -> tuple[datetime, datetime]:
    """Return the validity of a walk-in code issued at ``now``: from now (less the clock tolerance) until the
    meeting ends plus ``grace_after_end``, whatever the calendar day (:meth:`CodeValidity.window`)."""
    return CodeValidity(grace_after_end=grace_after_end).window(meeting.starts_at, meeting.ends_at, issued_at=now)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _ensure_meeting_open(meeting: Meeting, now: datetime) -> None:
    if meeting.status == MeetingState.CANCELLED:
        raise WalkinRefusedError("meeting_closed", Reason.MEETING_CANCELLED, "Cuộc họp đã bị hủy")
    if meeting.status not in MeetingState.TAKES_WALKINS or meeting.ends_at <= now:
        raise WalkinRefusedError("meeting_closed", Reason.EXPIRED, "Cuộc họp đã kết thúc hoặc chưa mở")


def _same_person(meeting: Meeting, id_hash: str, statuses: tuple[WalkinState, ...],
                 exclude: int | None = None) -> Walkin | None:
    """The same person's walk-in for this meeting in one of ``statuses``: a code lasts the whole meeting, so a
    person is registered and admitted once per meeting, across midnight too."""
    query = Walkin.select().where(
        (Walkin.meeting == meeting)
        & (Walkin.id_hash == id_hash)
        & (Walkin.status.in_(list(statuses)))
    )
    if exclude is not None:
        query = query.where(Walkin.id != exclude)
    return query.first()


def _details(walkin: Walkin, **extra: Any) -> dict[str, Any]:
    return {"meeting": walkin.meeting_id, "invitation": walkin.invitation.number, "name": walkin.full_name,
            "id": walkin.id_masked, "status": walkin.status, **extra}


def register(
    meeting: Meeting,
    invitation: Invitation,
    cccd_record: CccdRecord,
    actor: str,
    *,
    secret: str | bytes,
    now: datetime | None = None,
) -> Walkin:
    """Register a walk-in for ``meeting`` under ``invitation`` from a parsed CCCD; audited as ``walkin.register``.

    Policy ``direct`` approves at once (decided by ``actor``), ``approval`` leaves it pending. Refused when the
    invitation is of another meeting or not approved, the meeting is cancelled or over, or the same person is
    already pending, approved or admitted for this meeting.
    """
    now = _now(now)
    if invitation.meeting_id != meeting.id:
        raise WalkinRefusedError("other_meeting", Reason.MALFORMED, "Thư mời không thuộc cuộc họp đã chọn")
    if invitation.status not in InvitationState.REGISTERABLE or not invitation.number:
        raise WalkinRefusedError("invitation_not_active", Reason.MALFORMED, "Thư mời chưa được duyệt và cấp số")
    _ensure_meeting_open(meeting, now)
    id_hash = hash_id_number(cccd_record.id_number, secret)
    direct = (meeting.walkin_policy or DEFAULT_POLICY) == "direct"
    with write_transaction():
        twin = _same_person(meeting, id_hash, tuple(set(WalkinState) - {WalkinState.REJECTED}))
        if twin is not None:
            if twin.status == WalkinState.ADMITTED:
                raise WalkinRefusedError("already_admitted", Reason.ALREADY_INSIDE,
                                    "Người này đã được cấp mã vào cuộc họp hôm nay")
            raise WalkinRefusedError("already_registered", Reason.ALREADY_INSIDE,
                                "Người này đã được đăng ký cho cuộc họp, đang chờ duyệt hoặc đã duyệt")
        walkin = Walkin.create(
            meeting=meeting,
            invitation=invitation,
            full_name=cccd_record.full_name[:120],
            date_of_birth=cccd_record.date_of_birth,
            sex=cccd_record.sex,
            id_hash=id_hash,
            id_masked=cccd_record.masked_id,
            status=WalkinState.APPROVED if direct else WalkinState.PENDING,
            created_by=actor[:64],
            created_at=now,
            decided_by=actor[:64] if direct else "",
            decided_at=now if direct else None,
            decision_note="Cho vào trực tiếp (quy định của cuộc họp)" if direct else "",
        )
        audit(actor, "walkin.register", f"walkin:{walkin.id}", _details(walkin, policy=meeting.walkin_policy),
              now=now)
    log.info("walkin registered id=%s meeting=%s invitation=%s id_number=%s status=%s",
             walkin.id, meeting.id, invitation.id, walkin.id_masked, walkin.status)
    return get(walkin.id)


def get(walkin_id: int) -> Walkin:
    """Return the walk-in or raise :class:`NotFoundError`."""
    walkin = Walkin.get_or_none(Walkin.id == walkin_id)
    if walkin is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy khách")
    return walkin


def _decide(walkin_id: int, actor: str, note: str, status: WalkinState, now: datetime) -> Walkin:
    with write_transaction():
        walkin = get(walkin_id)
        if walkin.status != WalkinState.PENDING:
            raise WalkinRefusedError("not_pending", Reason.MALFORMED,
                                f"Khách không ở trạng thái chờ duyệt ({WalkinState(walkin.status).vi})")
        if status == WalkinState.APPROVED:
            _ensure_meeting_open(walkin.meeting, now)
        walkin.status = status
        walkin.decided_by = actor[:64]
        walkin.decided_at = now
        walkin.decision_note = note
        walkin.save()
        audit(actor, f"walkin.{'approve' if status == WalkinState.APPROVED else 'reject'}", f"walkin:{walkin.id}",
              _details(walkin, note=note), now=now)
    log.info("walkin %s id=%s by=%s", status, walkin.id, actor)
    return get(walkin.id)


def _note(note: Any, *, required: bool) -> str:
    try:
        return v.multiline_text(note, required=required, max_length=MAX_NOTE) or ""
    except v.FieldError as exc:
        raise InvalidInputError({"note": str(exc)}) from None


def approve(walkin_id: int, actor: str, note: str = "", *, now: datetime | None = None) -> Walkin:
    """Approve a pending walk-in (an organiser on the dashboard); audited as ``walkin.approve``."""
    return _decide(walkin_id, actor, _note(note, required=False), WalkinState.APPROVED, _now(now))


def reject(walkin_id: int, actor: str, note: str, *, now: datetime | None = None) -> Walkin:
    """Reject a pending walk-in with a reason (``note`` is required); audited as ``walkin.reject``."""
    return _decide(walkin_id, actor, _note(note, required=True), WalkinState.REJECTED, _now(now))


def pending(meeting: Meeting) -> list[Walkin]:
    """Return the meeting's walk-ins awaiting approval, oldest first."""
    return list(
        Walkin.select()
        .where((Walkin.meeting == meeting) & (Walkin.status == WalkinState.PENDING))
        .order_by(Walkin.created_at, Walkin.id)
    )


def admit(
    walkin: Walkin | int,
    actor: str,
    *,
    now: datetime | None = None,
    signing_key: Callable[[], ActiveKey] | None = None,
    grace_after_end: timedelta = DEFAULT_GRACE_AFTER_END,
) -> Walkin:
    """Issue an approved walk-in's code and mark them admitted; audited as ``walkin.admit``.

    The code is a delegate under the walk-in's invitation (see :func:`walkin_window`), in the meeting's scheme
    (``signing_key`` is needed for signed meetings), appended to the change stream like any delegate.
    """
    now = _now(now)
    walkin_id = walkin if isinstance(walkin, int) else walkin.id
    with write_transaction():
        walkin = get(walkin_id)
        if walkin.status != WalkinState.APPROVED:
            raise WalkinRefusedError("not_approved", Reason.MALFORMED,
                                f"Chỉ cấp mã cho khách đã được duyệt ({WalkinState(walkin.status).vi})")
        meeting: Meeting = walkin.meeting
        _ensure_meeting_open(meeting, now)
        if _same_person(meeting, walkin.id_hash, (WalkinState.ADMITTED,), exclude=walkin.id) is not None:
            raise WalkinRefusedError("already_admitted", Reason.ALREADY_INSIDE,
                                "Người này đã được cấp mã vào cuộc họp hôm nay")
        delegate = _issue_code(walkin, meeting, now, signing_key, grace_after_end)
        walkin.status = WalkinState.ADMITTED
        walkin.delegate = delegate
        walkin.save()
        audit(actor, "walkin.admit", f"walkin:{walkin.id}",
              _details(walkin, delegate=delegate.id, valid_until=delegate.valid_until.isoformat()), now=now)
    log.info("walkin admitted id=%s delegate=%s meeting=%s id_number=%s valid_until=%s",
             walkin.id, delegate.id, meeting.id, walkin.id_masked, delegate.valid_until.isoformat())
    return get(walkin.id)


REMOTE_OPEN_COUNTED = (CommandState.SENT, CommandState.OK, CommandState.TIMEOUT)
"""Open commands that use up a walk-in's remote open: sent, done, or unanswered (the gate may still have opened).
One the gate answered ``failed`` (locked down, refused, not published) did not open, so the guard may try again."""


def check_remote_open(delegate_id: int, now: datetime) -> Walkin | None:
    """The rule for opening a gate remotely for a walk-in's one-day code ``delegate_id``: once per admission, within
    the code's validity. Returns the walk-in (None when the delegate is not a walk-in's: no rule applies).

    Call inside the transaction that stores the open command: it first writes the admission row, which serialises
    two guards opening for the same walk-in at once (SQLite's write lock, PostgreSQL's row lock). Raises
    :class:`WalkinRefusedError`: ``not_admitted``, ``revoked``, ``not_yet_valid``, ``expired`` or
    ``already_opened`` (reason ``already_inside``).
    """
    from central.gates.models import GateCommand

    walkin = Walkin.get_or_none(Walkin.delegate == delegate_id)
    if walkin is None:
        return None
    Walkin.update(status=Walkin.status).where(Walkin.id == walkin.id).execute()  # lock the admission
    walkin = get(walkin.id)
    delegate = walkin.delegate
    if walkin.status != WalkinState.ADMITTED or delegate is None:
        raise WalkinRefusedError("not_admitted", Reason.MALFORMED,
                                 f"Khách chưa được cấp mã ({WalkinState(walkin.status).vi})")
    if delegate.revoked_at is not None:
        raise WalkinRefusedError("revoked", Reason.REVOKED, "Mã một ngày của khách đã bị hủy")
    if now < delegate.valid_from:
        raise WalkinRefusedError("not_yet_valid", Reason.NOT_YET_VALID, "Mã một ngày của khách chưa có hiệu lực")
    if now >= delegate.valid_until:
        raise WalkinRefusedError("expired", Reason.EXPIRED, "Mã một ngày của khách đã hết hạn")
    opened = GateCommand.select().where(
        (GateCommand.action == "open") & (GateCommand.delegate_id == delegate.id)
        & GateCommand.status.in_(list(REMOTE_OPEN_COUNTED))
    ).exists()
    if opened:
        raise WalkinRefusedError("already_opened", Reason.ALREADY_INSIDE,
                                 "Đã mở cổng cho khách này một lần; khách vào lại bằng mã một ngày")
    return walkin


def _issue_code(walkin: Walkin, meeting: Meeting, now: datetime,
                signing_key: Callable[[], ActiveKey] | None, grace_after_end: timedelta) -> Delegate:
    from central.registration.delegates import assign_code

    valid_from, valid_until = walkin_window(meeting, now, grace_after_end)
    scheme = Scheme(meeting.scheme)
    if scheme is Scheme.SIGNED and signing_key is None:
        raise WalkinRefusedError("no_signing_key", Reason.INTERNAL_ERROR, "Chưa có khóa ký mã số")
    delegate = Delegate.create(
        invitation=walkin.invitation, meeting=meeting, name=walkin.full_name, position=WALKIN_POSITION,
        email="", phone=None, code="", credential=f"pending:{uuid.uuid4()}", valid_from=valid_from,
        valid_until=valid_until, mail_status=DelegateMailState.DESK, created_at=now,
    )
    return assign_code(delegate, signing_key() if signing_key is not None and scheme is Scheme.SIGNED else None, now)


def set_policy(meeting: Meeting, policy: Any, actor: str, *, now: datetime | None = None) -> Meeting:
    """Set the meeting's walk-in policy (``direct`` or ``approval``); audited when it changes."""
    if policy not in POLICIES:
        raise InvalidInputError({"walkin_policy": "Phải là một trong: " + ", ".join(POLICIES)})
    if meeting.walkin_policy == policy:
        return meeting
    now = _now(now)
    with write_transaction():
        previous = meeting.walkin_policy
        Meeting.update(walkin_policy=policy).where(Meeting.id == meeting.id).execute()
        audit(actor, "meeting.walkin_policy", f"meeting:{meeting.id}", {"from": previous, "to": policy}, now=now)
    return Meeting.get_by_id(meeting.id)


def today(now: datetime, meeting_ids: list[int] | None = None) -> list[Walkin]:
    """Return the walk-ins registered on ``now``'s local day or of a meeting still running (a meeting past
    midnight keeps its walk-ins on the desk), optionally of some meetings only, newest first."""
    start, end = local_day_bounds(now)
    running = [m.id for m in meetings_today(now)]
    query = (
        Walkin.select()
        .where(((Walkin.created_at >= start) & (Walkin.created_at < end)) | Walkin.meeting.in_(running))
        .order_by(Walkin.created_at.desc(), Walkin.id.desc())
    )
    if meeting_ids is not None:
        query = query.where(Walkin.meeting.in_(meeting_ids))
    return list(query)


def meetings_today(now: datetime) -> list[Meeting]:
    """Return the meetings the desk offers at ``now`` (open or closed, not over), by start: those running now
    and those starting later in ``now``'s meeting day or within the entry window (codes open before the start,
    :data:`central.core.validity.DEFAULT_ENTRY_OPENS_BEFORE`), across midnight."""
    _, day_end = local_day_bounds(now)
    end = max(day_end, now + DEFAULT_ENTRY_OPENS_BEFORE)
    return list(
        Meeting.select()
        .where(
            Meeting.status.in_(list(MeetingState.TAKES_WALKINS))
            & (Meeting.starts_at < end)
            & (Meeting.ends_at > now)
        )
        .order_by(Meeting.starts_at, Meeting.id)
    )


def find_invitations(query: str, now: datetime, meeting_id: int | None = None, limit: int = 20
                     ) -> list[Invitation]:
    """Return active invitations of today's meetings whose number or organisation name contains ``query``
    (case- and accent-insensitive for the name)."""
    needle = _fold(query)
    if not needle:
        return []
    meetings = [m.id for m in meetings_today(now) if meeting_id is None or m.id == meeting_id]
    if not meetings:
        return []
    rows = (
        Invitation.select(Invitation, Organisation)
        .join(Organisation)
        .where(Invitation.meeting.in_(meetings)
               & Invitation.status.in_(list(InvitationState.REGISTERABLE)))
        .order_by(Organisation.name)
    )
    found = [inv for inv in rows if needle in _fold(inv.number or "") or needle in _fold(inv.organisation.name)]
    return found[:limit]


def _fold(text: str) -> str:
    """Lower-case without diacritics ("Sở Tài chính" -> "so tai chinh"), for forgiving search."""
    import unicodedata

    decomposed = unicodedata.normalize("NFD", text.casefold().replace("đ", "d"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).strip()


def walkin_to_dict(walkin: Walkin, lang: str = "vi") -> dict[str, Any]:
    """Return the JSON form of a walk-in for the desk and the dashboard (masked ID only, never the code)."""
    status = WalkinState(walkin.status)
    return {
        "id": walkin.id,
        "meeting_id": walkin.meeting_id,
        "meeting_title": walkin.meeting.title,
        "invitation_number": walkin.invitation.number,
        "organisation": walkin.invitation.organisation.name,
        "full_name": walkin.full_name,
        "date_of_birth": walkin.date_of_birth.isoformat(),
        "sex": walkin.sex,
        "id_masked": walkin.id_masked,
        "status": walkin.status,
        "status_label": status.text(lang),
        "created_by": walkin.created_by,
        "created_at": walkin.created_at.isoformat(),
        "decided_by": walkin.decided_by,
        "decided_at": walkin.decided_at.isoformat() if walkin.decided_at else None,
        "decision_note": walkin.decision_note,
        "delegate_id": walkin.delegate_id,
    }
