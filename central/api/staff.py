"""API routes for staff operations: meetings (edit, state, documents), the invitation flow, users,
organisations, venues and the audit log. Each route checks its role (``central.auth``); the services
validate, write and audit."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import jsonify, request

from central.api import bp
from central.api.helpers import ApiError, context, json_body
from central.auth import current_actor, current_identity, login_required, roles_required
from central.auth.roles import ADMINISTRATOR, APPROVER, ORGANISER
from central.core import audit
from central.core.errors import InvalidInputError
from central.services import deliveries, documents, invitations, meetings, organisations, users, venues
from central.services.deliveries import Channels
from central.services.documents import DocumentTooLargeError
from central.web import delivery_channels, mail_reissued_code, notify_cancelled, upload_limit
from protocols.reasons import Reason

STAFF = (ORGANISER, APPROVER)


def _now() -> Any:
    return context().clock()


def _channels() -> Channels:
    return delivery_channels()


@bp.get("/me")
@login_required
def me() -> Any:
    """Return who is calling and their role."""
    identity = current_identity()
    return jsonify({"username": identity.username, "role": identity.role, "full_name": identity.full_name})


# ------------------------------------------------------------------------------------------------ meetings


@bp.get("/meetings")
@roles_required(*STAFF)
def list_meetings() -> Any:
    """List meetings (``?status=`` filters)."""
    rows = meetings.list_meetings(request.args.get("status"))
    return jsonify([meetings.meeting_to_dict(m) for m in rows])


@bp.patch("/meetings/<int:meeting_id>")
@roles_required(ORGANISER)
def update_meeting(meeting_id: int) -> Any:
    """Edit a meeting; moving its time re-issues and e-mails the delegates' codes."""
    ctx = context()
    meeting = meetings.update_meeting(
        meeting_id, json_body(), _now(), actor=current_actor(), reissue=mail_reissued_code,
        signing_key=ctx.signing_key, entry_opens_before=ctx.entry_opens_before,
    )
    return jsonify(meetings.meeting_to_dict(meeting))


@bp.post("/meetings/<int:meeting_id>/status")
@roles_required(ORGANISER)
def set_meeting_status(meeting_id: int) -> Any:
    """Move a meeting to another state; cancelling revokes every code and notifies the delegates."""
    meeting = meetings.set_status(meeting_id, json_body().get("status"), _now(), actor=current_actor(),
                                  notify_cancelled=notify_cancelled)
    return jsonify(meetings.meeting_to_dict(meeting))


@bp.get("/meetings/<int:meeting_id>/documents")
@roles_required(*STAFF)
def list_documents(meeting_id: int) -> Any:
    """List a meeting's documents."""
    meeting = meetings.get_meeting(meeting_id)
    return jsonify([documents.document_to_dict(d) for d in meeting.documents])


@bp.post("/meetings/<int:meeting_id>/documents")
@roles_required(ORGANISER)
def upload_document(meeting_id: int) -> Any:
    """Attach a document (multipart field ``file``; PDF, DOCX or XLSX by content)."""
    meeting = meetings.get_meeting(meeting_id)
    upload = request.files.get("file")
    try:
        document = documents.add_document(
            meeting, upload.filename if upload else "", upload.read() if upload else b"",
            data_dir=context().config.data_dir, max_bytes=upload_limit(), actor=current_actor(), now=_now(),
        )
    except DocumentTooLargeError as exc:
        raise ApiError(413, "too_large", Reason.TOO_LONG, exc.fields["file"]) from None
    return jsonify(documents.document_to_dict(document)), 201


# -------------------------------------------------------------------------------------- invitation flow


@bp.get("/invitations")
@roles_required(*STAFF)
def list_invitations() -> Any:
    """List invitations (``?status=``, ``?meeting_id=`` filter)."""
    meeting_id = request.args.get("meeting_id", type=int)
    rows = invitations.list_invitations(request.args.get("status"), meeting_id)
    return jsonify([invitations.invitation_to_dict(i) for i in rows])


@bp.post("/invitations/drafts")
@roles_required(ORGANISER)
def draft_invitations() -> Any:
    """Draft one invitation per organisation in ``organisation_ids``."""
    drafted = invitations.draft_invitations(json_body(), actor=current_actor(), now=_now())
    return jsonify([invitations.invitation_to_dict(i) for i in drafted]), 201


@bp.get("/invitations/<int:invitation_id>")
@roles_required(*STAFF)
def get_invitation(invitation_id: int) -> Any:
    """Return an invitation with its per-channel delivery status."""
    return jsonify(invitations.invitation_to_dict(invitations.get_invitation(invitation_id), with_deliveries=True))


@bp.post("/invitations/<int:invitation_id>/approve")
@roles_required(APPROVER)
def approve_invitation(invitation_id: int) -> Any:
    """Approve: number the invitation and send it by e-mail and SMS."""
    ctx = context()
    approved = invitations.approve_invitation(
        invitation_id, actor=current_actor(), now=_now(), number_format=ctx.config.invitation_format,
        public_url=ctx.config.public_url,
    )
    deliveries.deliver_due(_channels(), now=_now(), invitation_id=invitation_id)
    return jsonify(invitations.invitation_to_dict(invitations.get_invitation(approved.invitation.id),
                                                  with_deliveries=True))


@bp.post("/invitations/<int:invitation_id>/return")
@roles_required(APPROVER)
def return_invitation(invitation_id: int) -> Any:
    """Return a draft to the organiser with a ``comment``."""
    invitation = invitations.return_invitation(invitation_id, json_body().get("comment"), actor=current_actor(),
                                               now=_now())
    return jsonify(invitations.invitation_to_dict(invitation))


@bp.post("/invitations/<int:invitation_id>/resubmit")
@roles_required(ORGANISER)
def resubmit_invitation(invitation_id: int) -> Any:
    """Submit a returned invitation again (optionally with a new ``delegate_limit``)."""
    invitation = invitations.resubmit_invitation(invitation_id, json_body(), actor=current_actor(), now=_now())
    return jsonify(invitations.invitation_to_dict(invitation))


@bp.post("/invitations/<int:invitation_id>/send")
@roles_required(*STAFF)
def send_invitation(invitation_id: int) -> Any:
    """Retry every unsent channel of an approved invitation now ("gửi lại")."""
    invitation = invitations.get_invitation(invitation_id)
    pending = [d for d in invitation.deliveries if d.status != deliveries.SENT and d.link]
    for delivery in pending:
        deliveries.resend(delivery.id, actor=current_actor(), now=_now())
    deliveries.deliver_due(_channels(), now=_now(), invitation_id=invitation_id)
    return jsonify(invitations.invitation_to_dict(invitations.get_invitation(invitation_id), with_deliveries=True))


# ------------------------------------------------------------------------------- users, units, venues, audit


@bp.get("/users")
@roles_required(ADMINISTRATOR)
def list_users() -> Any:
    """List staff users."""
    from central import models

    return jsonify([users.user_to_dict(u) for u in models.User.select().order_by(models.User.username)])


@bp.post("/users")
@roles_required(ADMINISTRATOR)
def create_user() -> Any:
    """Create a staff user."""
    user = users.create_user(json_body(), actor=current_actor(), now=_now())
    return jsonify(users.user_to_dict(user)), 201


@bp.patch("/users/<int:user_id>")
@roles_required(ADMINISTRATOR)
def update_user(user_id: int) -> Any:
    """Change a user's role, name, e-mail, unit, active flag or password."""
    return jsonify(users.user_to_dict(users.update_user(user_id, json_body(), actor=current_actor(), now=_now())))


@bp.get("/organisations")
@roles_required(ORGANISER, APPROVER)
def list_organisations() -> Any:
    """List organisations."""
    return jsonify([organisations.organisation_to_dict(o) for o in organisations.list_organisations()])


@bp.patch("/organisations/<int:org_id>")
@roles_required(ADMINISTRATOR)
def update_organisation(org_id: int) -> Any:
    """Change an organisation's name or contacts."""
    org = organisations.update_organisation(org_id, json_body(), actor=current_actor(), now=_now())
    return jsonify(organisations.organisation_to_dict(org))


@bp.get("/venues")
@roles_required(ORGANISER, APPROVER)
def list_venues() -> Any:
    """List venues (``?kind=main|remote``)."""
    return jsonify([venues.venue_to_dict(v) for v in venues.list_venues(request.args.get("kind"))])


@bp.post("/venues")
@roles_required(ADMINISTRATOR)
def create_venue() -> Any:
    """Create a venue."""
    return jsonify(venues.venue_to_dict(venues.create_venue(json_body(), actor=current_actor(), now=_now()))), 201


@bp.patch("/venues/<int:venue_id>")
@roles_required(ADMINISTRATOR)
def update_venue(venue_id: int) -> Any:
    """Change a venue."""
    venue = venues.update_venue(venue_id, json_body(), actor=current_actor(), now=_now())
    return jsonify(venues.venue_to_dict(venue))


@bp.get("/audit")
@roles_required(ADMINISTRATOR)
def audit_log() -> Any:
    """The audit log, newest first (``?actor=``, ``?action=``, ``?day=YYYY-MM-DD`` in Vietnam time)."""
    raw_day = request.args.get("day")
    day = None
    if raw_day:
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            raise InvalidInputError({"day": "Ngày không hợp lệ, dùng dạng YYYY-MM-DD"}) from None
    entries = audit.search(actor=request.args.get("actor"), action=request.args.get("action"), day=day)
    return jsonify([audit.entry_to_dict(e) for e in entries])
