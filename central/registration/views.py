"""Routes of the registration pages: short functions that read the form, call a service, render or redirect.

The secret travels in the query string (``?s=``) of every URL, so the page works from the link alone,
without an account or a cookie. An unknown number and a wrong secret give the same 404 page; they count as
guesses of the client's address at that number, together with the JSON API's and the document downloads'
(:mod:`central.invitations.guesses`): after ``REGISTRATION_GUESS_LIMIT`` (default 10 per minute) the pair gets
429.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext
from werkzeug.exceptions import TooManyRequests

from central.core.context import CentralContext
from central.core.errors import InvalidInputError, NotFoundError, ServiceError
from central.core.states import ApprovalState, DelegateMailState
from central.core.validation import national_phone
from central.invitations import guesses, shortlinks
from central.invitations.models import Invitation
from central.meetings import documents
from central.registration import imports, services
from central.registration.models import Delegate

log = logging.getLogger(__name__)

bp = Blueprint("registration", __name__, url_prefix="/dang-ky", template_folder="templates")
FORM_FIELDS = ("name", "position", "email", "phone")


def _ctx() -> CentralContext:
    return current_app.extensions["vaora"]


def _deps() -> services.Deps:
    return services.Deps.of(_ctx())


def _secret() -> str | None:
    value = request.args.get("s")
    return value if isinstance(value, str) and len(value) <= 128 else None


def _invitation(number: str) -> Invitation:
    try:
        return services.open_invitation(number, _secret())
    except NotFoundError:
        log.info("registration open refused addr=%s", request.remote_addr)
        abort(404)


def _form_data() -> dict[str, str]:
    return {name: request.form.get(name, "") for name in FORM_FIELDS}


def _page_url(number: str, **extra: Any) -> str:
    return url_for("registration.page", number=number, s=_secret(), **extra)


def _render(
    invitation: Invitation,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    mode: str = "add",
    target: Delegate | None = None,
    status: int = 200,
) -> Any:
    now = _ctx().clock()
    delegates = services.active_delegates(invitation)
    closed = services.closed_reason(invitation, now)
    return (
        render_template(
            "registration/page.html",
            invitation=invitation,
            meeting=invitation.meeting,
            organisation=invitation.organisation,
            delegates=delegates,
            refused=services.refused_delegates(invitation),
            needs_approval=services.needs_approval(invitation),
            limit=services.delegate_limit(invitation),
            deadline=services.deadline_of(invitation.meeting),
            closed=closed,
            form=form or {},
            errors=errors or {},
            message=message,
            mode=mode,
            target=target,
            secret=_secret(),
            unsent=sum(1 for d in delegates
                       if d.mail_status in DelegateMailState.UNSENT and d.approval == ApprovalState.APPROVED),
            progress=services.mail_progress(invitation),
            # the page's script fills these in as the e-mails leave (translated, not yet formatted)
            progress_texts={"sent": gettext("Đã gửi %(sent)d/%(total)d"), "failed": gettext("lỗi %(failed)d")},
            documents=documents.shared_documents(invitation.meeting_id),
        ),
        status,
    )


def _target(invitation: Invitation, raw: str | None) -> Delegate | None:
    if raw is None or not raw.isdigit():
        return None
    return next((d for d in services.active_delegates(invitation) if d.id == int(raw)), None)


@bp.get("/<path:number>")
def page(number: str) -> Any:
    """Show the invitation, its delegates and the add (or edit / replace) form."""
    invitation = _invitation(number)
    target = _target(invitation, request.args.get("sua")) or _target(invitation, request.args.get("thay"))
    mode = "add"
    form: dict[str, str] = {}
    if target is not None and request.args.get("sua"):
        mode = "edit"
        form = {
            "name": target.name,
            "position": target.position or "",
            "email": target.email,
            "phone": national_phone(target.phone),
        }
    elif target is not None:
        mode = "replace"
    return _render(invitation, form=form, mode=mode, target=target)


def _refused(invitation: Invitation, exc: ServiceError, mode: str, target: Any = None) -> Any:
    errors = exc.fields if isinstance(exc, InvalidInputError) else {}
    message = None if errors else exc.message
    status = 400 if errors else 404 if isinstance(exc, NotFoundError) else 409
    return _render(
        invitation, form=_form_data(), errors=errors, message=message, mode=mode, target=target, status=status
    )


@bp.post("/<path:number>/dai-bieu")
def add(number: str) -> Any:
    """Add a delegate."""
    invitation = _invitation(number)
    try:
        delegate = services.add_delegate(invitation, _form_data(), _ctx().clock(), _deps())
    except ServiceError as exc:
        return _refused(invitation, exc, "add")
    if delegate.approval == ApprovalState.PENDING:
        flash(gettext("Đã thêm đại biểu %(name)s; mã sẽ được gửi sau khi Văn phòng duyệt.",
                      name=delegate.name), "success")
    else:
        flash(gettext("Đã thêm đại biểu %(name)s.", name=delegate.name), "success")
    return redirect(_page_url(number) + f"#delegate-{delegate.id}")  # no jump to the top: back to the card


@bp.post("/<path:number>/dai-bieu/<int:delegate_id>/sua")
def edit(number: str, delegate_id: int) -> Any:
    """Correct a delegate's details."""
    invitation = _invitation(number)
    try:
        delegate = services.edit_delegate(invitation, delegate_id, _form_data(), _ctx().clock())
    except ServiceError as exc:
        return _refused(invitation, exc, "edit", _target(invitation, str(delegate_id)))
    flash(gettext("Đã cập nhật đại biểu %(name)s.", name=delegate.name), "success")
    return redirect(_page_url(number) + f"#delegate-{delegate.id}")  # no jump to the top: back to the card


@bp.post("/<path:number>/dai-bieu/<int:delegate_id>/thay")
def replace(number: str, delegate_id: int) -> Any:
    """Send another person instead of a delegate (old code revoked, new code mailed)."""
    invitation = _invitation(number)
    try:
        delegate = services.replace_delegate(invitation, delegate_id, _form_data(), _ctx().clock(), _deps())
    except ServiceError as exc:
        return _refused(invitation, exc, "replace", _target(invitation, str(delegate_id)))
    if delegate.approval == ApprovalState.PENDING:
        flash(gettext("Đã thay bằng đại biểu %(name)s; mã cũ đã bị hủy, mã mới sẽ được gửi sau khi Văn phòng duyệt.",
                      name=delegate.name),
              "success")
    else:
        flash(gettext("Đã thay bằng đại biểu %(name)s; mã cũ đã bị hủy, mã mới đang được gửi.",
                      name=delegate.name), "success")
    return redirect(_page_url(number) + f"#delegate-{delegate.id}")  # no jump to the top: back to the card


@bp.post("/<path:number>/dai-bieu/<int:delegate_id>/xoa")
def remove(number: str, delegate_id: int) -> Any:
    """Remove a delegate (their code is revoked)."""
    invitation = _invitation(number)
    try:
        delegate = services.remove_delegate(invitation, delegate_id, _ctx().clock(), _deps())
    except ServiceError as exc:
        return _refused(invitation, exc, "add")
    flash(gettext("Đã xóa đại biểu %(name)s; mã của đại biểu này không còn dùng được.", name=delegate.name), "success")
    return redirect(_page_url(number) + "#danh-sach")


@bp.post("/<path:number>/gui-mail")
def send(number: str) -> Any:
    """Queue the code e-mails of every delegate not mailed yet ("Gửi Mail")."""
    invitation = _invitation(number)
    try:
        count = services.send_mails(invitation, _ctx().clock(), _deps())
    except ServiceError as exc:
        return _refused(invitation, exc, "add")
    if count:
        flash(gettext("Đang gửi mail cho %(count)d đại biểu.", count=count), "success")
    else:
        flash(gettext("Không có đại biểu nào cần gửi mail."), "warning")
    return redirect(_page_url(number))


@bp.get("/<path:number>/tien-do")
def progress(number: str) -> Any:
    """Return the progress of the latest "Gửi Mail" as JSON (the page polls it)."""
    invitation = _invitation(number)
    body = services.mail_progress(invitation).to_dict()
    body["delegates"] = {str(d.id): d.mail_status for d in services.active_delegates(invitation)}
    return jsonify(body)


def _upload() -> bytes:
    """The uploaded file's bytes (at most one byte over the import limit: more is refused anyway)."""
    upload = request.files.get("tep")
    return upload.stream.read(imports.MAX_IMPORT_BYTES + 1) if upload is not None else b""


def _render_import(
    invitation: Invitation, *, rows: list[imports.Row] | None = None, problems: list[imports.Problem] | None = None,
    message: str | None = None, status: int = 200,
) -> Any:
    return render_template(
        "registration/import.html",
        invitation=invitation,
        meeting=invitation.meeting,
        organisation=invitation.organisation,
        closed=services.closed_reason(invitation, _ctx().clock()),
        limit=services.delegate_limit(invitation),
        count=len(services.active_delegates(invitation)),
        columns=imports.DELEGATE_COLUMNS,
        rows=rows,
        rows_json=imports.rows_to_json(rows, imports.DELEGATE_COLUMNS) if rows else "",
        problems=problems or [],
        message=message,
        secret=_secret(),
    ), status


def _import_refused(invitation: Invitation, exc: ServiceError) -> Any:
    if isinstance(exc, imports.RowsRefusedError):
        return _render_import(invitation, problems=exc.problems, status=400)
    bad_input = isinstance(exc, InvalidInputError | imports.FileRefusedError)
    return _render_import(invitation, message=exc.message, status=400 if bad_input else 409)


@bp.get("/<path:number>/nhap")
def import_page(number: str) -> Any:
    """The delegate list import: the template to download and the upload form."""
    return _render_import(_invitation(number))


@bp.get("/<path:number>/mau-danh-sach.xlsx")
def import_template_xlsx(number: str) -> Any:
    """Download the delegate list's template (Vietnamese headers) as XLSX."""
    _invitation(number)
    return _attachment(imports.template_xlsx(imports.DELEGATE_COLUMNS, "Đại biểu"), imports.XLSX_TYPE,
                       "danh-sach-dai-bieu.xlsx")


@bp.get("/<path:number>/mau-danh-sach.csv")
def import_template_csv(number: str) -> Any:
    """Download the delegate list's template (Vietnamese headers) as CSV (UTF-8 with a byte-order mark)."""
    _invitation(number)
    return _attachment(imports.template_csv(imports.DELEGATE_COLUMNS), "text/csv; charset=utf-8",
                       "danh-sach-dai-bieu.csv")


def _attachment(body: bytes, mimetype: str, filename: str) -> Any:
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return response


@bp.post("/<path:number>/nhap")
def import_preview(number: str) -> Any:
    """Read the uploaded list and check every row with the registration rules; show the preview (nothing saved)."""
    invitation = _invitation(number)
    try:
        rows = imports.check_delegate_file(invitation, _upload(), _ctx().clock())
    except ServiceError as exc:
        return _import_refused(invitation, exc)
    return _render_import(invitation, rows=rows)


@bp.post("/<path:number>/nhap/luu")
def import_save(number: str) -> Any:
    """Save the previewed list, all rows or none (the rules are checked again); the e-mails wait for "Gửi Mail"."""
    invitation = _invitation(number)
    try:
        rows = imports.rows_from_json(request.form.get("danh-sach"), imports.DELEGATE_COLUMNS)
        saved = imports.import_delegates(invitation, rows, _ctx().clock(), _deps())
    except ServiceError as exc:
        return _import_refused(invitation, exc)
    flash(gettext("Đã thêm %(count)d đại biểu từ tệp. Bấm “Gửi Mail” để gửi mã cho tất cả.",
                  count=len(saved)), "success")
    return redirect(_page_url(number) + "#send-title")


@bp.get("/<path:number>/tai-lieu/<int:document_id>")
def document(number: str, document_id: int) -> Any:
    """Download a meeting document the office shared with the invitees (audited)."""
    invitation = _invitation(number)
    try:
        shared = documents.shared_document(invitation.meeting_id, document_id)
    except NotFoundError:
        abort(404)
    path = documents.document_path(shared, _ctx().config.data_dir)
    if not path.is_file():
        abort(404)
    documents.record_download(shared, invitation_id=invitation.id, number=invitation.number or "",
                              now=_ctx().clock())
    return send_file(path, mimetype=documents.KINDS[shared.kind], as_attachment=True,
                     download_name=shared.filename)


@bp.errorhandler(429)
def _too_many(exc: TooManyRequests) -> Any:
    response = current_app.make_response((render_template("error.html", status=429, message=guesses.MESSAGE), 429))
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def init_registration(app: Flask) -> guesses.GuessCounter:
    """Register the registration blueprint and the app's invitation guess counter, kept in
    ``VAORA_RATELIMIT_STORAGE`` (memory by default; Redis when several processes serve)."""
    storage = app.config.get("REGISTRATION_LIMIT_STORAGE") or app.extensions["vaora"].config.ratelimit_storage
    counter = guesses.install(app, storage)
    if "registration" not in app.blueprints:
        app.register_blueprint(bp)
    app.add_url_rule("/registration/<path:number>", "registration_legacy_link", _legacy_link)
    app.add_url_rule(f"{shortlinks.PATH}<token>", "registration_short_link", _short_link)
    return counter


def _short_link(token: str) -> Any:
    """Open the registration page from an SMS's short link ``/dk/<token>`` (the token serves as the secret)."""
    try:
        invitation = shortlinks.find_by_token(token)
    except NotFoundError:
        log.info("short link refused addr=%s", request.remote_addr)
        abort(404)
    return redirect(url_for("registration.page", number=invitation.number, s=token))


def _legacy_link(number: str) -> Any:
    """Redirect the API's ``/registration/<number>?secret=`` links to the page."""
    secret = request.args.get("secret") or request.args.get("s")
    return redirect(url_for("registration.page", number=number, s=secret))
