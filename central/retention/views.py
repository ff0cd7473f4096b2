"""The office's page for one person's data (administrators only): search by e-mail, phone or CCCD number, then
download everything stored about them (JSON) or erase them, after a confirmation. Searches go by POST, so no
address or ID number lands in a URL or an access log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from central.auth import admin_required, current_actor
from central.core.errors import InvalidInputError
from central.retention import subjects
from central.web import clock_now

bp = Blueprint("retention", __name__, url_prefix="/admin/du-lieu-ca-nhan", template_folder="templates")


def _form() -> dict[str, str]:
    return {name: (request.form.get(name) or "").strip()[:64] for name in ("email", "phone", "cccd")}


def _render(form: dict[str, str], *, subject: subjects.Subject | None = None, errors: dict[str, str] | None = None,
            status: int = 200) -> Any:
    return render_template("retention/index.html", form=form, subject=subject, errors=errors or {}), status


def _find(form: dict[str, str]) -> subjects.Subject:
    return subjects.find_subject(subjects.parse_query(form), secret=str(current_app.secret_key or "") or None)


@bp.route("/", methods=["GET", "POST"])
@admin_required
def index() -> Any:
    """The search form; a POST shows what is stored about the person, with the export and erase buttons."""
    if request.method == "GET":
        return _render({"email": "", "phone": "", "cccd": ""})
    form = _form()
    try:
        subject = _find(form)
    except InvalidInputError as exc:
        return _render(form, errors=exc.fields, status=400)
    return _render(form, subject=subject)


@bp.route("/xuat", methods=["POST"])
@admin_required
def export() -> Any:
    """Everything stored about the person, as a JSON download (audited)."""
    form = _form()
    try:
        subject = _find(form)
    except InvalidInputError as exc:
        return _render(form, errors=exc.fields, status=400)
    content = subjects.export_json(subjects.export_subject(subject, current_actor(), now=clock_now()))
    return Response(content, mimetype="application/json",
                    headers={"Content-Disposition": 'attachment; filename="du-lieu-ca-nhan.json"'})


@bp.route("/xoa", methods=["POST"])
@admin_required
def erase() -> Any:
    """Anonymise the person everywhere once the confirmation box is ticked (audited)."""
    form = _form()
    try:
        subject = _find(form)
    except InvalidInputError as exc:
        return _render(form, errors=exc.fields, status=400)
    if request.form.get("confirm") != "1":
        return _render(form, subject=subject, status=400,
                       errors={"confirm": _("Hãy đánh dấu ô xác nhận: việc xóa không thể hoàn tác.")})
    counts = subjects.erase_subject(subject, current_actor(), now=clock_now())
    flash(_("Đã ẩn danh dữ liệu của người này: %(delegates)d lượt đăng ký, %(walkins)d khách vãng lai.",
            delegates=counts["delegates_anonymised"], walkins=counts["walkins_anonymised"]), "success")
    return redirect(url_for("retention.index"))
