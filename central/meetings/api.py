"""The JSON API of meetings: create, read, edit, change state, documents, and the venues they use.

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from central.api import bp
from central.api.helpers import (
    ApiError,
    context,
    json_body,
)
from central.auth import current_actor, roles_required
from central.auth.roles import ADMINISTRATOR, APPROVER, ORGANISER, STAFF_ROLES
from central.clients.services import current_client_id
from central.meetings import documents, venues
from central.meetings import services as meetings
from central.meetings.documents import DocumentTooLargeError
from central.meetings.notices import mail_reissued_code, notify_cancelled
from central.web import upload_limit
from protocols.reasons import Reason


@bp.post("/meetings")
@roles_required(ORGANISER)
def create_meeting() -> Any:
    """Create a meeting. With an ``Idempotency-Key`` header a retry returns the same meeting (header
    ``Idempotent-Replayed: true``), and the key with another body answers 422; an API client's ``external_id``
    already used answers 409 with the ``meeting_id`` it has."""
    try:
        created = meetings.create_meeting_idempotent(
            json_body(), context().clock(), actor=current_actor(),
            idempotency_key=request.headers.get("Idempotency-Key"), api_client_id=current_client_id(),
        )
    except meetings.DuplicateExternalIdError as exc:
        raise ApiError(409, "conflict", "duplicate_external_id", exc.message, meeting_id=exc.meeting_id) from None
    except meetings.IdempotencyKeyReusedError as exc:
        raise ApiError(422, "conflict", "idempotency_key_reused", exc.message, meeting_id=exc.meeting_id) from None
    response = jsonify(meetings.meeting_to_dict(created.meeting))
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, 201


@bp.get("/meetings/<int:meeting_id>")
@roles_required(ORGANISER, APPROVER)
def get_meeting(meeting_id: int) -> Any:
    """Return one meeting."""
    return jsonify(meetings.meeting_to_dict(meetings.get_meeting(meeting_id)))


@bp.get("/meetings")
@roles_required(*STAFF_ROLES)
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
        meeting_id, json_body(), context().clock(), actor=current_actor(), reissue=mail_reissued_code,
        signing_key=ctx.signing_key, entry_opens_before=ctx.entry_opens_before,
    )
    return jsonify(meetings.meeting_to_dict(meeting))


@bp.post("/meetings/<int:meeting_id>/status")
@roles_required(ORGANISER)
def set_meeting_status(meeting_id: int) -> Any:
    """Move a meeting to another state; cancelling revokes every code and notifies the delegates."""
    meeting = meetings.set_status(meeting_id, json_body().get("status"), context().clock(), actor=current_actor(),
                                  notify_cancelled=notify_cancelled)
    return jsonify(meetings.meeting_to_dict(meeting))


@bp.get("/meetings/<int:meeting_id>/documents")
@roles_required(*STAFF_ROLES)
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
            data_dir=context().config.data_dir, max_bytes=upload_limit(), actor=current_actor(), now=context().clock(),
        )
    except DocumentTooLargeError as exc:
        raise ApiError(413, "too_large", Reason.TOO_LONG, exc.fields["file"]) from None
    return jsonify(documents.document_to_dict(document)), 201


@bp.get("/venues")
@roles_required(ORGANISER, APPROVER)
def list_venues() -> Any:
    """List venues (``?kind=main|remote``)."""
    return jsonify([venues.venue_to_dict(v) for v in venues.list_venues(request.args.get("kind"))])


@bp.post("/venues")
@roles_required(ADMINISTRATOR)
def create_venue() -> Any:
    """Create a venue."""
    venue = venues.create_venue(json_body(), actor=current_actor(), now=context().clock())
    return jsonify(venues.venue_to_dict(venue)), 201


@bp.patch("/venues/<int:venue_id>")
@roles_required(ADMINISTRATOR)
def update_venue(venue_id: int) -> Any:
    """Change a venue."""
    venue = venues.update_venue(venue_id, json_body(), actor=current_actor(), now=context().clock())
    return jsonify(venues.venue_to_dict(venue))
