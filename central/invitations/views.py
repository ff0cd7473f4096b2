"""Invitation pages: list, detail with per-channel delivery status, approve, return, resubmit, resend; the
office's import of its organisations from a file."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from central.auth import current_actor, roles_required
from central.auth.roles import APPROVER, ORGANISER
from central.core.errors import NotFoundError, ServiceError
from central.invitations import deliveries, letterhead, organisations
from central.invitations import services as invitations
from central.invitations.models import Delivery
from central.registration import imports
from central.web import clock_now, ctx, service_error_message
from central.web.forms_util import int_or_raw
from protocols.reasons import Reason

bp = Blueprint("invitations", __name__, url_prefix="/invitations", template_folder="templates")


STAFF = (ORGANISER, APPROVER)


class ActionForm(FlaskForm):
    """A button (CSRF only)."""


class ReturnForm(FlaskForm):
    """Return a draft with a comment."""

    comment = TextAreaField(_l("Ý kiến (lý do trả lại)"))


class ResubmitForm(FlaskForm):
    """Submit a returned draft again."""

    delegate_limit = StringField(_l("Số đại biểu tối đa"), render_kw={"inputmode": "numeric"})


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
            invitations.return_invitation(invitation_id, form.comment.data, actor=current_actor(), now=clock_now())
        except ServiceError as exc:
            form.comment.errors = [service_error_message(exc)]
            return show(invitation_id, return_form=form)
        flash(_("Đã trả lại thư mời kèm ý kiến."), "success")
    return redirect(url_for("invitations.show", invitation_id=invitation_id))


@bp.post("/<int:invitation_id>/resubmit")
@roles_required(ORGANISER)
def resubmit(invitation_id: int) -> Any:
    """Submit a returned draft again for approval."""
    form = ResubmitForm()
    if form.validate_on_submit():
        try:
            invitations.resubmit_invitation(invitation_id, {"delegate_limit": int_or_raw(form.delegate_limit.data)},
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
            flash(_("Đã gửi lại."), "info")
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
