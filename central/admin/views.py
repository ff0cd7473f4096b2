"""Administration pages. Each create/edit calls a service, which validates and writes the audit log."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

from central.admin import audit_text, signing_keys
from central.admin.forms import IssuingBodyForm, OrganisationForm, UserForm, VenueForm
from central.auth import admin_required, current_actor, sessions, users
from central.auth.models import User
from central.auth.roles import ROLE_LABELS_VI, ROLES
from central.core import audit, keys
from central.core.errors import InvalidInputError, ServiceError
from central.core.keys import KeyState
from central.core.models import AuditEntry
from central.core.validation import national_phone
from central.invitations import letterhead, organisations, protocol
from central.meetings import venues
from central.web import clock_now, ctx, save_form, service_error_message

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")


def _render_form(form: FlaskForm, title: str, back: str, status: int, **extra: Any) -> Any:
    return render_template("admin/form.html", form=form, title=title, back=back, **extra), status


def _recipients(org: Any) -> dict[str, Any]:
    """Where this organisation's invitations go, by the one rule the sender uses."""
    return {"email": organisations.invitation_email(org), "phones": organisations.invitation_phones(org)}


def _user_choices(form: UserForm) -> None:
    form.role.choices = [(role, _(ROLE_LABELS_VI[role])) for role in ROLES]
    form.organisation_id.choices = [(0, "—")] + [(o.id, o.name) for o in organisations.list_organisations()]


@bp.route("/users", methods=["GET", "POST"], endpoint="users")
@admin_required
def users_page() -> Any:
    """List users and create one."""
    form = UserForm()
    _user_choices(form)
    status = 200
    if form.validate_on_submit():
        saved = save_form(form, lambda: users.create_user({**form.data, "organisation_id": form.organisation_id.data
                                                            or None}, actor=current_actor(), now=clock_now()),
                          _("Đã tạo người dùng."), "admin.users")
        if saved is not None:
            return saved
    if request.method == "POST":
        status = 400
    rows = User.select().order_by(User.username)
    return render_template("admin/users.html", form=form, users=rows), status



@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def user_edit(user_id: int) -> Any:
    """Edit a user (role, name, e-mail, unit, active; a new password only when typed)."""
    user = users.get_user(user_id)
    form = UserForm(obj=user) if request.method == "GET" else UserForm()
    _user_choices(form)
    if request.method == "GET":
        form.organisation_id.data = user.organisation_id or 0
        form.password.data = ""
    elif form.validate_on_submit():
        data = {
            "role": form.role.data, "full_name": form.full_name.data, "position": form.position.data,
            "email": form.email.data,
            "organisation_id": form.organisation_id.data or None, "active": bool(form.active.data),
            "password": form.password.data,
        }
        saved = save_form(form, lambda: users.update_user(user_id, data, actor=current_actor(), now=clock_now(),
                                                          keep_session=sessions.current_token()),
                          _("Đã lưu người dùng."), "admin.users")
        if saved is not None:
            return saved
    del form.username
    return _render_form(form, _("Sửa người dùng") + f": {user.username}", url_for("admin.users"),
                        400 if request.method == "POST" else 200)


def _org_data(form: OrganisationForm) -> dict[str, Any]:
    return {name: form[name].data for name in ("name", "leader_name", "leader_phone", "leader_email",
                                                 "office_phone", "office_email")}


@bp.route("/organisations", methods=["GET", "POST"], endpoint="organisations")
@admin_required
def organisations_page() -> Any:
    """List organisations and create one."""
    form = OrganisationForm()
    if form.validate_on_submit():
        saved = save_form(form, lambda: organisations.create_organisation(_org_data(form), actor=current_actor(),
                                                                          now=clock_now()),
                          _("Đã thêm đơn vị."), "admin.organisations")
        if saved is not None:
            return saved
    status = 400 if request.method == "POST" else 200
    return render_template("admin/organisations.html", form=form, recipients=_recipients,
                           organisations=organisations.list_organisations()), status


@bp.route("/organisations/<int:org_id>", methods=["GET", "POST"])
@admin_required
def organisation_edit(org_id: int) -> Any:
    """Edit an organisation."""
    org = organisations.get_organisation(org_id)
    form = OrganisationForm(obj=org) if request.method == "GET" else OrganisationForm()
    if request.method == "GET":  # phones shown as people write them; stored international
        form.leader_phone.data = national_phone(org.leader_phone)
        form.office_phone.data = national_phone(org.office_phone)
    if form.validate_on_submit():
        saved = save_form(form, lambda: organisations.update_organisation(org_id, _org_data(form),
                                                                          actor=current_actor(), now=clock_now()),
                          _("Đã lưu đơn vị."), "admin.organisations")
        if saved is not None:
            return saved
    return _render_form(form, _("Sửa đơn vị"), url_for("admin.organisations"),
                        400 if request.method == "POST" else 200, recipients=_recipients(org))


@bp.route("/venues", methods=["GET", "POST"], endpoint="venues")
@admin_required
def venues_page() -> Any:
    """List venues and create one."""
    form = VenueForm()
    if form.validate_on_submit():
        saved = save_form(form, lambda: venues.create_venue(form.data, actor=current_actor(), now=clock_now()),
                          _("Đã thêm địa điểm."), "admin.venues")
        if saved is not None:
            return saved
    status = 400 if request.method == "POST" else 200
    return render_template("admin/venues.html", form=form, venues=venues.list_venues()), status


@bp.route("/venues/<int:venue_id>", methods=["GET", "POST"])
@admin_required
def venue_edit(venue_id: int) -> Any:
    """Edit a venue."""
    venue = venues.get_venue(venue_id)
    form = VenueForm(obj=venue) if request.method == "GET" else VenueForm()
    if form.validate_on_submit():
        saved = save_form(form, lambda: venues.update_venue(venue_id, form.data, actor=current_actor(),
                                                            now=clock_now()),
                          _("Đã lưu địa điểm."), "admin.venues", flash_service_errors=True)
        if saved is not None:
            return saved
    return _render_form(form, _("Sửa địa điểm"), url_for("admin.venues"), 400 if request.method == "POST" else 200)


BODY_FIELDS = ("parent_name", "name", "doc_symbol", "body_symbol", "place", "signing_authority", "signer_position",
               "signer_name", "recipients", "is_default")


def _body_data(form: IssuingBodyForm) -> dict[str, Any]:
    return {name: form[name].data for name in BODY_FIELDS}


@bp.route("/giay-moi", methods=["GET", "POST"], endpoint="issuing_bodies")
@admin_required
def issuing_bodies_page() -> Any:
    """The bodies that issue giấy mời (letterhead, symbols, place, signer, Nơi nhận); add one."""
    form = IssuingBodyForm()
    if form.validate_on_submit():
        saved = save_form(form, lambda: letterhead.create_body(_body_data(form), actor=current_actor(),
                                                               now=clock_now()),
                          _("Đã thêm cơ quan ban hành."), "admin.issuing_bodies")
        if saved is not None:
            return saved
    status = 400 if request.method == "POST" else 200
    return render_template("admin/issuing_bodies.html", form=form, bodies=letterhead.list_bodies(),
                           fallback=ctx().config.invitation_format), status


@bp.route("/giay-moi/<int:body_id>", methods=["GET", "POST"])
@admin_required
def issuing_body_edit(body_id: int) -> Any:
    """Edit an issuing body; numbers already given keep their symbols."""
    body = letterhead.get_body(body_id)
    form = IssuingBodyForm(obj=body) if request.method == "GET" else IssuingBodyForm()
    if form.validate_on_submit():
        saved = save_form(form, lambda: letterhead.update_body(body_id, _body_data(form), actor=current_actor(),
                                                               now=clock_now()),
                          _("Đã lưu cơ quan ban hành."), "admin.issuing_bodies")
        if saved is not None:
            return saved
    return _render_form(form, _("Sửa cơ quan ban hành"), url_for("admin.issuing_bodies"),
                        400 if request.method == "POST" else 200)


@bp.route("/thu-tu-le-tan", methods=["GET", "POST"], endpoint="protocol_order")
@admin_required
def protocol_order_page() -> Any:
    """Protocol order: the order of positions and each organisation's rank (badges and name cards follow it)."""
    form = FlaskForm()
    orgs = organisations.list_organisations()
    errors: dict[str, str] = {}
    positions = "\n".join(protocol.position_order())
    if request.method == "POST":
        positions = request.form.get("position_order", "")
        ranks = {org.id: request.form.get(f"rank-{org.id}", "") for org in orgs}
        if not form.validate_on_submit():
            errors["form"] = _("Phiên làm việc đã hết hạn, vui lòng thử lại.")
        else:
            try:
                protocol.save_protocol(positions, ranks, actor=current_actor(), now=clock_now())
            except InvalidInputError as exc:
                errors = dict(exc.fields)
            else:
                flash(_("Đã lưu thứ tự lễ tân."), "success")
                return redirect(url_for("admin.protocol_order"))
    return render_template("admin/protocol_order.html", form=form, organisations=orgs, positions=positions,
                           errors=errors, posted=request.form if request.method == "POST" else None), \
        400 if errors else 200


@bp.get("/audit", endpoint="audit_log")
@admin_required
def audit_log() -> Any:
    """The audit log, filterable by user, action and (Vietnam-time) day."""
    actor = (request.args.get("actor") or "").strip()[:64] or None
    action = (request.args.get("action") or "").strip()[:64] or None
    raw_day = (request.args.get("day") or "").strip()
    day = None
    error = None
    if raw_day:
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            error = _("Ngày không hợp lệ, dùng dạng YYYY-MM-DD")
    entries = [] if error else audit.search(actor=actor, action=action, day=day)
    usernames = sorted({row.actor for row in AuditEntry.select(AuditEntry.actor).distinct()})
    names = audit_text.actor_names(usernames)
    return render_template(
        "admin/audit.html", lines=audit_text.audit_lines(entries), actor=actor, action=action, day=raw_day,
        error=error, names=names, actors=[(name, names[name]) for name in usernames],
        actions=[(code, audit_text.action_label(code)) for code in audit.known_actions()],
    ), 400 if error else 200


KEY_STATE_LABELS = {KeyState.ACTIVE: _l("Đang ký mã"), KeyState.RETIRED: _l("Đã thay, vẫn kiểm tra mã cũ"),
                    KeyState.REVOKED: _l("Đã thu hồi")}


@bp.get("/khoa-ky", endpoint="signing_keys")
@admin_required
def signing_keys_page() -> Any:
    """The signing keys: state, dates, the codes each signed; a rotate button and a revoke button per key."""
    return render_template("admin/signing_keys.html", keys=signing_keys.list_keys(), form=FlaskForm(),
                           labels=KEY_STATE_LABELS, now=clock_now())


@bp.post("/khoa-ky/xoay", endpoint="rotate_signing_key")
@admin_required
def rotate_signing_key() -> Any:
    """Rotate: a new active key; the old one keeps verifying its codes until they expire (CSRF-protected)."""
    if not FlaskForm().validate_on_submit():
        flash(_("Phiên làm việc đã hết hạn, vui lòng thử lại."), "error")
        return redirect(url_for("admin.signing_keys"))
    rotated = keys.rotate(ctx().config.signing_key_file, current_actor(), clock_now())
    flash(_("Đã tạo khóa ký mới số %(key_id)s; khóa cũ vẫn kiểm tra các mã đã cấp đến khi hết hạn.",
            key_id=rotated.key_id), "success")
    return redirect(url_for("admin.signing_keys"))


@bp.post("/khoa-ky/<int:key_id>/thu-hoi", endpoint="revoke_signing_key")
@admin_required
def revoke_signing_key(key_id: int) -> Any:
    """Revoke a key: every online gate refuses its codes (CSRF-protected; the page asks to confirm)."""
    if not FlaskForm().validate_on_submit():
        flash(_("Phiên làm việc đã hết hạn, vui lòng thử lại."), "error")
        return redirect(url_for("admin.signing_keys"))
    try:
        keys.revoke(ctx().config.signing_key_file, key_id, current_actor(), clock_now())
    except ServiceError as exc:
        flash(service_error_message(exc), "error")
    else:
        flash(_("Đã thu hồi khóa ký số %(key_id)s; các cổng đang kết nối từ chối mã ký bằng khóa này.",
                key_id=key_id), "success")
    return redirect(url_for("admin.signing_keys"))
