"""The JSON API of meetings: create, read, edit, change state, documents, and the venues they use.

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from central.api import bp
from central.api.helpers import ApiError, context
from central.api.spec import Responses, amend, errors, validate, validated_json, validated_query
from central.auth import current_actor, current_role, roles_required
from central.auth.roles import ADMINISTRATOR, APPROVER, ORGANISER, STAFF_ROLES
from central.clients.services import current_client_id
from central.core.errors import NotFoundError
from central.meetings import documents, venues
from central.meetings import schemas as m
from central.meetings import services as meetings
from central.meetings.booking import BookingRules
from central.meetings.documents import DocumentTooLargeError
from central.meetings.notices import mail_reissued_code, notify_cancelled
from central.web import upload_limit
from protocols.reasons import Reason


@bp.post("/meetings")
@roles_required(ORGANISER, APPROVER)
@validate(json=m.MeetingCreate, headers=m.IdempotencyKey,
          resp=Responses(HTTP_201=m.Meeting, **errors(400, 401, 403, 409, 422)))
def create_meeting() -> Any:
    """Create a meeting. With an ``Idempotency-Key`` header a retry returns the same meeting (header
    ``Idempotent-Replayed: true``), and the key with another body answers 422; an API client's ``external_id``
    already used answers 409 with the ``meeting_id`` it has.

    A meeting with remote points booked later than ``VAORA_REMOTE_BOOKING_WORKING_DAYS`` working days ahead answers
    409 ``booking_too_late`` (with ``earliest_day``) unless a leader (approver) sends ``booking_override_reason``;
    a hall booked by an overlapping meeting answers 409 ``venue_double_booked`` with ``other_meeting_id``."""
    try:
        created = meetings.create_meeting_idempotent(
            validated_json(), context().clock(), actor=current_actor(),
            idempotency_key=request.headers.get("Idempotency-Key"), api_client_id=current_client_id(),
            role=current_role(), booking=BookingRules.configured(context().config),
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
@validate(resp=Responses(HTTP_200=m.Meeting, **errors(401, 403, 404)))
def get_meeting(meeting_id: int) -> Any:
    """Return one meeting."""
    return jsonify(meetings.meeting_to_dict(meetings.get_meeting(meeting_id)))


@bp.get("/meetings")
@roles_required(*STAFF_ROLES)
@validate(query=m.MeetingQuery, resp=Responses(HTTP_200=m.MeetingList, **errors(400, 401, 403)))
def list_meetings() -> Any:
    """List meetings (``?status=`` filters)."""
    rows = meetings.list_meetings(validated_query().status)
    return jsonify([meetings.meeting_to_dict(m) for m in rows])


@bp.patch("/meetings/<int:meeting_id>")
@roles_required(ORGANISER, APPROVER)
@validate(json=m.MeetingUpdate, resp=Responses(HTTP_200=m.Meeting, **errors(400, 401, 403, 404, 409)))
def update_meeting(meeting_id: int) -> Any:
    """Edit a meeting; moving its time re-issues and e-mails the delegates' codes. The booking rules of the
    create apply to what changes (a remote point added, a new time or hall)."""
    ctx = context()
    meeting = meetings.update_meeting(
        meeting_id, validated_json(), context().clock(), actor=current_actor(), reissue=mail_reissued_code,
        signing_key=ctx.signing_key, entry_opens_before=ctx.entry_opens_before,
        grace_after_end=ctx.code_validity.grace_after_end, role=current_role(),
        booking=BookingRules.configured(ctx.config),
    )
    return jsonify(meetings.meeting_to_dict(meeting))


@bp.post("/meetings/<int:meeting_id>/status")
@roles_required(ORGANISER)
@validate(json=m.MeetingStatusChange, resp=Responses(HTTP_200=m.Meeting, **errors(400, 401, 403, 404, 409)))
def set_meeting_status(meeting_id: int) -> Any:
    """Move a meeting to another state; cancelling revokes every code and notifies the delegates."""
    meeting = meetings.set_status(meeting_id, validated_json()["status"], context().clock(), actor=current_actor(),
                                  notify_cancelled=notify_cancelled)
    return jsonify(meetings.meeting_to_dict(meeting))


@bp.get("/meetings/<int:meeting_id>/documents")
@roles_required(*STAFF_ROLES)
@validate(resp=Responses(HTTP_200=m.DocumentList, **errors(401, 403, 404)))
def list_documents(meeting_id: int) -> Any:
    """List a meeting's documents."""
    meeting = meetings.get_meeting(meeting_id)
    return jsonify([documents.document_to_dict(d) for d in meeting.documents])


@bp.post("/meetings/<int:meeting_id>/documents")
@roles_required(ORGANISER)
@validate(resp=Responses(HTTP_201=m.Document, **errors(400, 401, 403, 404, 409, 413)))
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


@bp.post("/meetings/<int:meeting_id>/documents/<int:document_id>/share")
@roles_required(ORGANISER)
@validate(json=m.DocumentShare, resp=Responses(HTTP_200=m.Document, **errors(400, 401, 403, 404)))
def share_document(meeting_id: int, document_id: int) -> Any:
    """Share a document with the invited organisations (``{"shared": true}``: linked from the invitation
    e-mail, listed on the registration page, downloadable with the invitation's secret) or stop sharing it."""
    if documents.get_document(document_id).meeting_id != meeting_id:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy tài liệu")
    document = documents.set_shared(document_id, validated_json()["shared"], actor=current_actor(),
                                    now=context().clock())
    return jsonify(documents.document_to_dict(document))


amend("/api/v1/meetings/{meeting_id}/documents", "post", requestBody={"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "PDF, DOCX or XLSX (by content)"}}}}}})


@bp.get("/venues")
@roles_required(ORGANISER, APPROVER)
@validate(query=m.VenueQuery, resp=Responses(HTTP_200=m.VenueList, **errors(400, 401, 403)))
def list_venues() -> Any:
    """List venues (``?kind=main|remote``)."""
    return jsonify([venues.venue_to_dict(v) for v in venues.list_venues(validated_query().kind)])


@bp.post("/venues")
@roles_required(ADMINISTRATOR)
@validate(json=m.VenueCreate, resp=Responses(HTTP_201=m.Venue, **errors(400, 401, 403, 409)))
def create_venue() -> Any:
    """Create a venue."""
    venue = venues.create_venue(validated_json(), actor=current_actor(), now=context().clock())
    return jsonify(venues.venue_to_dict(venue)), 201


@bp.patch("/venues/<int:venue_id>")
@roles_required(ADMINISTRATOR)
@validate(json=m.VenueUpdate, resp=Responses(HTTP_200=m.Venue, **errors(400, 401, 403, 404, 409)))
def update_venue(venue_id: int) -> Any:
    """Change a venue."""
    venue = venues.update_venue(venue_id, validated_json(), actor=current_actor(), now=context().clock())
    return jsonify(venues.venue_to_dict(venue))
