"""Invitation pages: list, detail with per-channel delivery status, approve, return, resubmit, resend; the
office's import of its organisations from a file; and the office's queues: the leader's invitations awaiting
approval (with bulk approval), and the registrations awaiting the office's approval (with bulk approval and refusal).
The menu's counts of both, and of the clerk's returned invitations, come from :func:`queue_counts`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField

from central.auth import current_actor, current_identity, roles_required
from central.auth.roles import APPROVER, ORGANISER
from central.core.errors import NotFoundError, ServiceError
from central.core.states import InvitationState
from central.invitations import deliveries, letterhead, organisations
from central.invitations import services as invitations
from central.invitations.models import Delivery
from central.registration import imports
from central.registration import services as registration
from central.web import clock_now, ctx, service_error_message
from central.web.forms_util import int_or_raw
from central.web.inputs import bounded_int
from protocols.reasons import Reason

bp = Blueprint("invitations", __name__, url_prefix="/invitations", template_folder="templates")


STAFF = (ORGANISER, APPROVER)


class ActionForm(FlaskForm):
    """A button (CSRF only)."""


class ReturnForm(FlaskForm):
    """Return a draft with a comment."""

    comment = TextAreaField(_l("Ý kiến (lý do trả lại)"))


class ResubmitForm(FlaskForm):
    """Edit a draft, or correct a returned one and submit it again."""

    organisation_id = SelectField(_l("Đơn vị được mời"), coerce=bounded_int, validate_choice=False)
    delegate_limit = StringField(_l("Số đại biểu tối đa"), render_kw={"inputmode": "numeric"})


class RefuseForm(FlaskForm):
    """Refuse a registration with a reason."""

    reason = StringField(_l("Lý do từ chối"))


MAX_BULK = 500
"""The most items one bulk approval takes."""


def _selected_ids() -> list[int]:
    """The ids ticked in a bulk form (``chon``); anything that is not a positive id is ignored."""
    ids = [int(raw) for raw in request.form.getlist("chon")[:MAX_BULK] if raw.isdigit() and 0 < int(raw) < 2**63]
    return list(dict.fromkeys(ids))


@bp.app_context_processor
def queue_counts() -> dict[str, Any]:
    """The menu's counts for the signed-in staff member: invitations awaiting a leader's approval, invitations
    returned to the clerks, and registrations awaiting the office's approval."""
    identity = current_identity()
    counts: dict[str, int] = {}
    if identity is not None and identity.user_id is not None and identity.has_role(*STAFF):
        if identity.has_role(APPROVER):
            counts["invitations_waiting"] = invitations.count_by_status(InvitationState.DRAFT)
        if identity.has_role(ORGANISER):
            counts["invitations_returned"] = invitations.count_by_status(InvitationState.RETURNED)
        counts["registrations_waiting"] = registration.count_pending_registrations()
    return {"queue": counts}


@bp.get("/")
@roles_required(*STAFF)
def index() -> Any:
    """List invitations, by default all; ``?status=draft`` is the approver's queue."""
    status = request.args.get("status") or None
    return render_template("invitations/index.html", invitations=invitations.list_invitations(status),
                           status=status, statuses=invitations.STATUSES)


@bp.get("/<int:invitation_id>")
@roles_required(*STAFF)
def show(invitation_id: int, return_form: ReturnForm | None = None) -> Any:
    """The invitation page: facts, comment, actions, and the sending status per channel."""
    invitation = invitations.get_invitation(invitation_id)
    form = ResubmitForm()
    form.delegate_limit.data = str(invitation.delegate_limit or "")
    form.organisation_id.choices = [(o.id, o.name) for o in organisations.list_organisations()]
    form.organisation_id.data = invitation.organisation_id
    return render_template(
        "invitations/show.html",
        invitation=invitation,
        deliveries=list(invitation.deliveries.order_by(Delivery.channel, Delivery.id)),
        action_form=ActionForm(),
        return_form=return_form or ReturnForm(),
        resubmit_form=form,
        masked=deliveries.delivery_to_dict,
    ), 200 if return_form is None else 400


@bp.get("/<int:invitation_id>/giay-moi.pdf")
@roles_required(*STAFF)
def letter_pdf(invitation_id: int) -> Any:
    """The giấy mời as a PDF: a draft's preview before approval (its number left blank), or the numbered letter."""
    invitation = invitations.get_invitation(invitation_id)
    config = ctx().config
    body = letterhead.preview_pdf(invitation, fallback_format=config.invitation_format, font=config.pdf_font,
                                  now=clock_now())
    response = current_app.response_class(body, mimetype="application/pdf")
    name = "".join(ch if ch.isalnum() else "-" for ch in invitation.number or f"du-thao-{invitation.id}")
    response.headers["Content-Disposition"] = f"inline; filename=giay-moi-{name}.pdf"
    return response


@bp.post("/<int:invitation_id>/approve")
@roles_required(APPROVER)
def approve(invitation_id: int) -> Any:
    """Approve: number the invitation and send it by e-mail and SMS at once (failures are retried)."""
    if ActionForm().validate_on_submit():
        context = ctx()
        try:
            approved = invitations.approve_invitation(
                invitation_id, actor=current_actor(), now=clock_now(),
                number_format=context.config.invitation_format, public_url=context.config.public_url,
            )
        except ServiceError as exc:
            flash(service_error_message(exc), "error")
        else:
            deliveries.deliver_due(deliveries.current_senders(), now=clock_now(), invitation_id=approved.invitation.id)
            flash(_("Đã duyệt thư mời số %(number)s.", number=approved.invitation.number), "success")
    return redirect(url_for("invitations.show", invitation_id=invitation_id))


@bp.post("/<int:invitation_id>/return")
@roles_required(APPROVER)
def return_(invitation_id: int) -> Any:
    """Return the draft to the organiser with a comment."""
    form = ReturnForm()
    if form.validate_on_submit():
        try:
            returned = invitations.return_invitation(invitation_id, form.comment.data, actor=current_actor(),
                                                     now=clock_now())
        except ServiceError as exc:
            form.comment.errors = [service_error_message(exc)]
            return show(invitation_id, return_form=form)
        context = ctx()
        invitations.notify_returned(returned, now=clock_now(), mail_sender=context.mail_sender,
                                    mail_from=context.config.mail_from)
        flash(_("Đã trả lại thư mời kèm ý kiến; chuyên viên soạn thảo đã được báo."), "success")
    return redirect(url_for("invitations.show", invitation_id=invitation_id))


@bp.post("/<int:invitation_id>/resubmit")
@roles_required(ORGANISER)
def resubmit(invitation_id: int) -> Any:
    """Save a draft, or submit a returned one again for approval (organisation and delegate limit)."""
    form = ResubmitForm()
    if form.validate_on_submit():
        try:
            invitations.resubmit_invitation(invitation_id, {"delegate_limit": int_or_raw(form.delegate_limit.data),
                                                            "organisation_id": form.organisation_id.data or None},
                                            actor=current_actor(), now=clock_now())
        except ServiceError as exc:
            flash(service_error_message(exc), "error")
        else:
            flash(_("Đã trình lại thư mời."), "success")
    return redirect(url_for("invitations.show", invitation_id=invitation_id))


@bp.post("/<int:invitation_id>/deliveries/<int:delivery_id>/resend")
@roles_required(*STAFF)
def resend(invitation_id: int, delivery_id: int) -> Any:
    """"Gửi lại": try a failed channel again now."""
    if ActionForm().validate_on_submit():
        row = Delivery.get_or_none(
            (Delivery.id == delivery_id) & (Delivery.invitation == invitation_id)
        )
        try:
            if row is None:
                raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy lượt gửi")
            deliveries.resend(delivery_id, actor=current_actor(), now=clock_now())
        except ServiceError as exc:
            flash(service_error_message(exc), "error")
        else:
            deliveries.send_now(delivery_id, deliveries.current_senders(), now=clock_now())
            sent, message = deliveries.resend_outcome(delivery_id)
            flash(message, {True: "success", False: "error", None: "info"}[sent])
    return redirect(url_for("invitations.show", invitation_id=invitation_id))


def _render_org_import(*, rows: list[imports.Row] | None = None, problems: list[imports.Problem] | None = None,
                       message: str | None = None, status: int = 200) -> Any:
    columns = organisations.ORGANISATION_COLUMNS
    return render_template("invitations/import_organisations.html", columns=columns, rows=rows,
                           rows_json=imports.rows_to_json(rows, columns) if rows else "",
                           problems=problems or [], message=message), status


def _org_import_refused(exc: ServiceError) -> Any:
    if isinstance(exc, imports.RowsRefusedError):
        return _render_org_import(problems=exc.problems, status=400)
    return _render_org_import(message=service_error_message(exc), status=400)


@bp.get("/don-vi/nhap")
@roles_required(ORGANISER)
def import_organisations_page() -> Any:
    """The organisation import: the template to download and the upload form."""
    return _render_org_import()


@bp.get("/don-vi/mau-danh-sach.xlsx")
@roles_required(ORGANISER)
def organisation_template_xlsx() -> Any:
    """Download the organisation list's template (Vietnamese headers) as XLSX."""
    body = imports.template_xlsx(organisations.ORGANISATION_COLUMNS, "Đơn vị")
    return _attachment(body, imports.XLSX_TYPE, "danh-sach-don-vi.xlsx")


@bp.get("/don-vi/mau-danh-sach.csv")
@roles_required(ORGANISER)
def organisation_template_csv() -> Any:
    """Download the organisation list's template (Vietnamese headers) as CSV (UTF-8 with a byte-order mark)."""
    body = imports.template_csv(organisations.ORGANISATION_COLUMNS)
    return _attachment(body, "text/csv; charset=utf-8", "danh-sach-don-vi.csv")


def _attachment(body: bytes, mimetype: str, filename: str) -> Any:
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return response


@bp.post("/don-vi/nhap")
@roles_required(ORGANISER)
def import_organisations_preview() -> Any:
    """Read the uploaded list and check every row; show the preview (nothing saved)."""
    upload = request.files.get("tep")
    data = upload.stream.read(imports.MAX_IMPORT_BYTES + 1) if upload is not None else b""
    try:
        rows = organisations.check_organisation_file(data)
    except ServiceError as exc:
        return _org_import_refused(exc)
    return _render_org_import(rows=rows)


@bp.post("/don-vi/nhap/luu")
@roles_required(ORGANISER)
def import_organisations_save() -> Any:
    """Save the previewed organisations, all or none (checked again)."""
    try:
        rows = imports.rows_from_json(request.form.get("danh-sach"), organisations.ORGANISATION_COLUMNS)
        created = organisations.import_organisations(rows, actor=current_actor(), now=clock_now())
    except ServiceError as exc:
        return _org_import_refused(exc)
    flash(_("Đã thêm %(count)d đơn vị từ tệp.", count=len(created)), "success")
    return redirect(url_for("invitations.import_organisations_page"))


# --------------------------------------------------------------------------------------------- the queues


@bp.get("/cho-duyet")
@roles_required(APPROVER)
def inbox() -> Any:
    """The leader's landing page: invitations awaiting approval, to approve one by one or several at once."""
    return render_template("invitations/inbox.html", waiting=invitations.waiting_for_approval(),
                           action_form=ActionForm())


@bp.post("/duyet-nhieu")
@roles_required(APPROVER)
def approve_many() -> Any:
    """Approve the ticked invitations: each is numbered and sent; one that cannot be is named."""
    if not ActionForm().validate_on_submit():
        abort(400)
    ids = _selected_ids()
    if not ids:
        flash(_("Chưa chọn thư mời nào."), "warning")
        return redirect(url_for("invitations.inbox"))
    context = ctx()
    outcome = invitations.approve_invitations(ids, actor=current_actor(), now=clock_now(),
                                              number_format=context.config.invitation_format,
                                              public_url=context.config.public_url)
    for approved in outcome.approved:
        deliveries.deliver_due(deliveries.current_senders(), now=clock_now(), invitation_id=approved.invitation.id)
    if outcome.approved:
        numbers = ", ".join(a.invitation.number or "" for a in outcome.approved)
        flash(_("Đã duyệt %(count)d thư mời: %(numbers)s.", count=len(outcome.approved), numbers=numbers), "success")
    for invitation_id, message in outcome.refused.items():
        flash(_("Thư mời #%(id)d chưa duyệt được: %(message)s", id=invitation_id, message=_(message)), "error")
    return redirect(url_for("invitations.inbox"))


def _meeting_filter() -> int | None:
    raw = request.args.get("meeting", "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 2**63 else None


@bp.get("/dang-ky-cho-duyet")
@roles_required(*STAFF)
def registrations() -> Any:
    """Registrations awaiting the office's approval, per meeting (``?meeting=`` for one), to approve in bulk or
    refuse with a reason."""
    meeting_id = _meeting_filter()
    pending = registration.pending_registrations(meeting_id)
    groups: dict[int, list[Any]] = {}
    for delegate in pending:
        groups.setdefault(delegate.meeting_id, []).append(delegate)
    return render_template("invitations/registrations.html", groups=list(groups.values()), meeting_id=meeting_id,
                           action_form=ActionForm(), refuse_form=RefuseForm())


@bp.post("/dang-ky-cho-duyet/duyet")
@roles_required(*STAFF)
def approve_registrations() -> Any:
    """Approve the ticked registrations: each gets its code, sent by e-mail."""
    if not ActionForm().validate_on_submit():
        abort(400)
    back = url_for("invitations.registrations", meeting=request.args.get("meeting") or None)
    ids = _selected_ids()
    if not ids:
        flash(_("Chưa chọn đăng ký nào."), "warning")
        return redirect(back)
    outcome = registration.approve_registrations(ids, actor=current_actor(), now=clock_now(),
                                                 deps=registration.Deps.of(ctx()))
    if outcome.approved:
        flash(_("Đã duyệt %(count)d đại biểu; mã vào cổng đang được gửi qua email.", count=len(outcome.approved)),
              "success")
    for delegate_id, message in outcome.refused.items():
        flash(_("Đăng ký #%(id)d chưa duyệt được: %(message)s", id=delegate_id, message=_(message)), "error")
    return redirect(back)


@bp.post("/dang-ky-cho-duyet/<int:delegate_id>/tu-choi")
@roles_required(*STAFF)
def refuse_registration(delegate_id: int) -> Any:
    """Refuse one registration with a reason (the organisation sees it on its page)."""
    form = RefuseForm()
    back = url_for("invitations.registrations", meeting=request.args.get("meeting") or None)
    if form.validate_on_submit():
        try:
            refused = registration.refuse_registration(delegate_id, form.reason.data, actor=current_actor(),
                                                       now=clock_now())
        except ServiceError as exc:
            flash(service_error_message(exc), "error")
        else:
            flash(_("Đã từ chối đăng ký của %(name)s.", name=refused.name), "success")
    return redirect(back)
