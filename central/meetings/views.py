"""Meeting pages. Routes parse the form, call a service and render; services validate and audit."""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _

from central.auth import current_actor, current_identity, current_role, roles_required
from central.auth.roles import APPROVER, ORGANISER
from central.core.errors import InvalidInputError, ServiceError
from central.core.states import InvitationState, MeetingState
from central.invitations import letterhead
from central.invitations import services as invitations
from central.invitations.models import Organisation
from central.meetings import badges, documents, venues
from central.meetings import services as meetings
from central.meetings.booking import BookingRules, BookingTooLateError, DoubleBookingError, OverrideNotAllowedError
from central.meetings.documents import DocumentTooLargeError
from central.meetings.forms import DeleteForm, DocumentForm, DraftInvitationsForm, MeetingForm, StatusForm
from central.meetings.models import MeetingDocument
from central.meetings.notices import mail_reissued_code, notify_cancelled
from central.web import (
    apply_field_errors,
    clock_now,
    ctx,
    service_error_message,
    upload_limit,
)
from central.web.forms import iso_to_local, local_to_iso
from central.web.forms_util import int_or_raw

bp = Blueprint("meetings", __name__, url_prefix="/meetings", template_folder="templates")


STAFF = (ORGANISER, APPROVER)


def _venue_choices(form: MeetingForm) -> None:
    form.main_venue_id.choices = [(0, _("— Chọn hội trường —"))] + [
        (v.id, v.name) for v in venues.list_venues("main")
    ]
    form.remote_venue_ids.choices = [(v.id, v.name) for v in venues.list_venues("remote")]


def _meeting_data(form: MeetingForm) -> dict[str, Any]:
    return {
        "title": form.title.data,
        "agenda": form.agenda.data,
        "chair": form.chair.data,
        "starts_at": local_to_iso(form.starts_at.data) or "",
        "ends_at": local_to_iso(form.ends_at.data) or "",
        "registration_deadline": local_to_iso(form.registration_deadline.data),
        "main_venue_id": form.main_venue_id.data or None,
        "remote_venue_ids": list(form.remote_venue_ids.data or []),
        "scheme": form.scheme.data,
        "entry_policy": form.entry_policy.data,
        "registration_approval": form.registration_approval.data == "1" if form.registration_approval.data else None,
        "booking_override_reason": form.booking_override_reason.data or None,
    }


BookingError = BookingTooLateError | OverrideNotAllowedError | DoubleBookingError


def _booking_error(form: MeetingForm, exc: BookingError) -> None:
    """Show a booking rule's refusal on the field it concerns (the time, the override, the hall)."""
    field = getattr(form, exc.field, None)
    if field is not None:
        field.errors = [*list(field.errors or []), exc.message]
    else:
        form.form_errors.append(exc.message)


def _render_form(form: MeetingForm, meeting: Any) -> Any:
    status = 400 if request.method == "POST" else 200
    return render_template("meetings/form.html", form=form, meeting=meeting,
                           booking_days=BookingRules.configured(ctx().config).min_working_days), status


def _save_walkin_policy(meeting_id: int, form: MeetingForm) -> None:
    """Store the walk-in policy chosen in the form (absent: unchanged); a bad value is flashed."""
    from central.desk import walkins

    if not form.walkin_policy.data:
        return
    try:
        walkins.set_policy(meetings.get_meeting(meeting_id), form.walkin_policy.data, current_actor(), now=clock_now())
    except ServiceError as exc:
        flash(service_error_message(exc), "error")


@bp.get("/")
@roles_required(*STAFF)
def index() -> Any:
    """List meetings, optionally by state."""
    status = request.args.get("status") or None
    return render_template("meetings/index.html", meetings=meetings.list_meetings(status), status=status,
                           statuses=meetings.STATUSES)


@bp.route("/new", methods=["GET", "POST"])
@roles_required(ORGANISER, APPROVER)
def new() -> Any:
    """Create a meeting (as a draft); a leader (approver) may also book a meeting with remote points late."""
    form = MeetingForm()
    _venue_choices(form)
    if form.validate_on_submit():
        data = {**_meeting_data(form), "status": MeetingState.DRAFT}
        try:
            meeting = meetings.create_meeting(data, clock_now(), actor=current_actor(), role=current_role(),
                                              booking=BookingRules.configured(ctx().config))
        except InvalidInputError as exc:
            apply_field_errors(form, exc)
        except (BookingTooLateError, OverrideNotAllowedError, DoubleBookingError) as exc:
            _booking_error(form, exc)
        else:
            _save_walkin_policy(meeting.id, form)
            flash(_("Đã tạo cuộc họp."), "success")
            return redirect(url_for("meetings.show", meeting_id=meeting.id))
    return _render_form(form, None)


@bp.route("/<int:meeting_id>/edit", methods=["GET", "POST"])
@roles_required(ORGANISER, APPROVER)
def edit(meeting_id: int) -> Any:
    """Edit a meeting; moving its time re-issues the delegates' codes."""
    meeting = meetings.get_meeting(meeting_id)
    form = MeetingForm()
    _venue_choices(form)
    if request.method == "GET":
        form.title.data = meeting.title
        form.agenda.data = meeting.agenda
        form.chair.data = meeting.chair
        form.starts_at.data = iso_to_local(meeting.starts_at)
        form.ends_at.data = iso_to_local(meeting.ends_at)
        form.registration_deadline.data = iso_to_local(meeting.registration_deadline)
        form.main_venue_id.data = meeting.main_venue or 0
        form.remote_venue_ids.data = [v.id for v in meetings.remote_venues(meeting)]
        form.scheme.data = meeting.scheme
        form.entry_policy.data = meeting.entry_policy
        form.walkin_policy.data = meeting.walkin_policy
        form.registration_approval.data = "1" if meeting.registration_approval else "0"
    elif form.validate_on_submit():
        data = _meeting_data(form)
        if not data["main_venue_id"]:
            data.pop("main_venue_id")  # keep a venue set through the API
        context = ctx()
        try:
            meetings.update_meeting(
                meeting_id, data, clock_now(), actor=current_actor(), reissue=mail_reissued_code,
                signing_key=context.signing_key, entry_opens_before=context.entry_opens_before,
                grace_after_end=context.code_validity.grace_after_end, role=current_role(),
                booking=BookingRules.configured(context.config),
            )
        except InvalidInputError as exc:
            apply_field_errors(form, exc)
        except (BookingTooLateError, OverrideNotAllowedError, DoubleBookingError) as exc:
            _booking_error(form, exc)
        except ServiceError as exc:
            flash(service_error_message(exc), "error")
        else:
            _save_walkin_policy(meeting_id, form)
            flash(_("Đã lưu cuộc họp."), "success")
            return redirect(url_for("meetings.show", meeting_id=meeting_id))
    return _render_form(form, meeting)


@bp.get("/<int:meeting_id>")
@roles_required(*STAFF)
def show(meeting_id: int) -> Any:
    """The meeting page: facts, state actions, documents, invitations."""
    meeting = meetings.get_meeting(meeting_id)
    draft_form = DraftInvitationsForm()
    invited = {inv.organisation_id for inv in meeting.invitations}
    draft_form.organisation_ids.choices = [
        (org.id, org.name) for org in Organisation.select().order_by(Organisation.name)
        if org.id not in invited
    ]
    draft_form.issuing_body_id.choices = [(0, _("Mặc định"))] + [
        (body.id, " · ".join(p for p in (body.name, body.parent_name) if p)) for body in letterhead.list_bodies()]
    return render_template(
        "meetings/show.html",
        meeting=meeting,
        remote=meetings.remote_venues(meeting),
        documents=list(meeting.documents.order_by(MeetingDocument.uploaded_at)),
        invitations=invitations.list_invitations(meeting_id=meeting.id),
        transitions=meetings.TRANSITIONS[MeetingState(meeting.status)],
        status_form=StatusForm(),
        document_form=DocumentForm(),
        draft_form=draft_form,
        delete_form=DeleteForm(),
        delegates=len(meetings.delegates_of(meeting)),
        max_upload_mb=ctx().config.max_upload_mb,
    )


@bp.get("/<int:meeting_id>/the-dai-bieu.pdf")
@roles_required(*STAFF)
def badges_pdf(meeting_id: int) -> Any:
    """Badges (``?loai=the-deo``) or name cards (``?loai=bien-ten``) of the delegates, A6 or A7 (``?kho=``), in
    protocol order."""
    meeting = meetings.get_meeting(meeting_id)
    kind, size = request.args.get("loai", "the-deo"), request.args.get("kho", "A6")
    if kind not in badges.KINDS or size not in badges.SIZES:
        abort(400, _("Loại thẻ hoặc khổ giấy không hợp lệ."))
    body = badges.render_badges(meeting.title, badges.badge_people(meeting), kind=kind, size=size,
                                font=ctx().config.pdf_font)
    response = send_file(io.BytesIO(body), mimetype="application/pdf", download_name=f"{kind}-{size}-{meeting.id}.pdf")
    response.headers["Content-Disposition"] = f"inline; filename={kind}-{size}-{meeting.id}.pdf"
    return response


@bp.post("/<int:meeting_id>/status")
@roles_required(ORGANISER)
def change_status(meeting_id: int) -> Any:
    """Move the meeting to another state; cancelling revokes codes and notifies the delegates."""
    form = StatusForm()
    if form.validate_on_submit():
        try:
            meetings.set_status(meeting_id, form.status.data, clock_now(), actor=current_actor(),
                                notify_cancelled=notify_cancelled)
            flash(_("Đã cập nhật trạng thái cuộc họp."), "success")
        except ServiceError as exc:
            flash(service_error_message(exc), "error")
    return redirect(url_for("meetings.show", meeting_id=meeting_id))


@bp.post("/<int:meeting_id>/documents")
@roles_required(ORGANISER)
def upload_document(meeting_id: int) -> Any:
    """Attach a document (PDF, DOCX, XLSX; checked by content)."""
    meeting = meetings.get_meeting(meeting_id)
    form = DocumentForm()
    if not form.validate_on_submit():
        abort(400)
    upload = form.file.data
    data = upload.read() if upload else b""
    try:
        documents.add_document(
            meeting, upload.filename if upload else "", data, data_dir=ctx().config.data_dir,
            max_bytes=upload_limit(), actor=current_actor(), now=clock_now(),
        )
    except DocumentTooLargeError:
        abort(413)
    except InvalidInputError as exc:
        flash(service_error_message(exc), "error")
        return redirect(url_for("meetings.show", meeting_id=meeting_id), 303)
    flash(_("Đã tải lên tài liệu."), "success")
    return redirect(url_for("meetings.show", meeting_id=meeting_id), 303)


@bp.post("/<int:meeting_id>/documents/<int:document_id>/delete")
@roles_required(ORGANISER)
def delete_document(meeting_id: int, document_id: int) -> Any:
    """Remove a document."""
    if DeleteForm().validate_on_submit():
        document = documents.get_document(document_id)
        if document.meeting_id != meeting_id:
            abort(404)
        documents.remove_document(document_id, data_dir=ctx().config.data_dir, actor=current_actor(),
                                  now=clock_now())
        flash(_("Đã xóa tài liệu."), "success")
    return redirect(url_for("meetings.show", meeting_id=meeting_id))


def _send_document(document: MeetingDocument) -> Any:
    path = documents.document_path(document, ctx().config.data_dir)
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype=documents.KINDS[document.kind], as_attachment=True,
                     download_name=document.filename)


@bp.get("/<int:meeting_id>/documents/<int:document_id>")
@roles_required(*STAFF)
def download_document(meeting_id: int, document_id: int) -> Any:
    """Staff download of a document."""
    document = documents.get_document(document_id)
    if document.meeting_id != meeting_id:
        abort(404)
    return _send_document(document)


@bp.post("/<int:meeting_id>/documents/<int:document_id>/share")
@roles_required(ORGANISER)
def share_document(meeting_id: int, document_id: int) -> Any:
    """Share a document with the invited organisations (``shared=1``) or stop sharing it (``shared=0``)."""
    if DeleteForm().validate_on_submit():  # a form of its CSRF token alone
        document = documents.get_document(document_id)
        if document.meeting_id != meeting_id:
            abort(404)
        shared = request.form.get("shared") == "1"
        documents.set_shared(document_id, shared, actor=current_actor(), now=clock_now())
        flash(_("Đã gửi kèm tài liệu cho các đơn vị được mời.") if shared
              else _("Đã thôi gửi kèm tài liệu cho các đơn vị được mời."), "success")
    return redirect(url_for("meetings.show", meeting_id=meeting_id) + "#docs-h")


@bp.get("/documents/<int:document_id>")
def public_document(document_id: int) -> Any:
    """Download for an invited organisation: ``?number=<invitation number>&secret=<its secret>``; the
    invitation must be approved or sent and be for the document's meeting, and the document shared with its
    invitees; the download is audited."""
    identity = current_identity()
    if identity is not None and identity.has_role(*STAFF):
        return _send_document(documents.get_document(document_id))
    try:
        invitation = invitations.find_invitation(request.args.get("number", ""), request.args.get("secret"))
        document = documents.shared_document(invitation.meeting_id, document_id)
    except ServiceError:
        abort(404)
    if invitation.status not in InvitationState.REGISTERABLE:
        abort(404)
    documents.record_download(document, invitation_id=invitation.id, number=invitation.number or "",
                              now=clock_now())
    return _send_document(document)


@bp.post("/<int:meeting_id>/invitations")
@roles_required(ORGANISER)
def draft_invitations(meeting_id: int) -> Any:
    """Draft one invitation per selected organisation."""
    form = DraftInvitationsForm()
    form.organisation_ids.choices = []
    if form.validate_on_submit():
        data = {
            "meeting_id": meeting_id,
            "organisation_ids": list(form.organisation_ids.data or []),
            "delegate_limit": int_or_raw(form.delegate_limit.data),
            "issuing_body_id": form.issuing_body_id.data or None,
        }
        try:
            drafted = invitations.draft_invitations(data, actor=current_actor(), now=clock_now())
        except ServiceError as exc:
            flash(service_error_message(exc), "error")
        else:
            flash(_("Đã soạn %(count)d thư mời, chờ lãnh đạo duyệt.", count=len(drafted)), "success")
    return redirect(url_for("meetings.show", meeting_id=meeting_id))
