"""Guard desk pages: scan a CCCD, register a walk-in under an invitation, admit, show the code, open a gate.

One page (``/ban-tiep-don/``) with small JSON helpers for its script: ``quet`` parses a scan with the one
parser (:func:`central.desk.cccd.parse_cccd`), ``thu-moi`` searches invitations, ``khach.json`` lets the page
notice an organiser's decision. Every form works without the script: the server parses the scan again on
submit, so the form never trusts fields filled in the browser. Role: guard (administrators pass).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import segno
from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField

from central.auth import current_actor, roles_required
from central.auth.roles import GUARD
from central.core import audit as audit_log
from central.core.errors import ServiceError
from central.core.states import CommandState, WalkinState
from central.desk import walkins
from central.desk.cccd import CccdError, CccdRecord, parse_cccd
from central.desk.models import Walkin
from central.gates.models import Gate
from central.gates.names import gate_title_of
from central.invitations.models import Invitation
from central.meetings.models import Meeting
from central.meetings.venues import meeting_sites
from central.registration.models import Delegate
from central.web import clock_now, ctx, select_locale, service_error_message
from central.web.inputs import bounded_int
from protocols.codes import Scheme, format_compact
from protocols.reasons import describe

bp = Blueprint(
    "desk", __name__, url_prefix="/ban-tiep-don", template_folder="templates",
    static_folder="static", static_url_path="/static",
)


log = logging.getLogger(__name__)

GATE_TIMEOUT_S = 5.0
"""How long the desk waits for a gate to acknowledge an open command (``DESK_GATE_TIMEOUT`` overrides)."""
MAX_QUERY = 100


class RegisterForm(FlaskForm):
    """The walk-in form: the scanned card text, the meeting and the invitation (number or organisation)."""

    scan = StringField(_l("Mã QR trên CCCD"))
    meeting_id = SelectField(_l("Cuộc họp"), coerce=bounded_int, validate_choice=False)
    invitation = StringField(_l("Thư mời (số hoặc tên đơn vị)"))


class ActionForm(FlaskForm):
    """A button on a walk-in (CSRF only)."""


class GateForm(FlaskForm):
    """Open a chosen gate for a walk-in."""

    gate_id = SelectField(_l("Cổng"), validate_choice=False)


def _now() -> Any:
    return clock_now()


def _secret() -> str:
    return str(current_app.secret_key)


def _meeting_choices(form: RegisterForm, meetings: list[Meeting]) -> None:
    form.meeting_id.choices = [(0, _("— Chọn cuộc họp —"))] + [
        (m.id, f"{m.title} ({m.starts_at.astimezone(walkins.LOCAL_TZ):%H:%M})") for m in meetings
    ]


def _scan_text(form: RegisterForm) -> str:
    return form.scan.data or ""


def _parse(text: str) -> CccdRecord:
    return parse_cccd(text, today=_now().astimezone(walkins.LOCAL_TZ).date())


def _resolve_invitation(text: str, meeting_id: int) -> Invitation | None:
    """The invitation of ``meeting_id`` with this exact number, or the only one whose organisation matches."""
    text = (text or "").strip()
    if not text or len(text) > MAX_QUERY:
        return None
    exact = Invitation.get_or_none((Invitation.number == text)
                                          & (Invitation.meeting == meeting_id))
    if exact is not None:
        return exact
    exact_elsewhere = (Invitation.select().where(Invitation.number == text)
                       .order_by(Invitation.id.desc()).first())
    if exact_elsewhere is not None:
        return exact_elsewhere  # the service refuses it with "other meeting"
    found = walkins.find_invitations(text, _now(), meeting_id=meeting_id)
    return found[0] if len(found) == 1 else None


def _gates_for(meetings: list[Meeting]) -> list[Gate]:
    sites = {site for meeting in meetings for site in meeting_sites(meeting)}
    if not sites:
        return []
    return list(Gate.select().where(Gate.site_id.in_(list(sites))).order_by(Gate.gate_id))


def _today_walkins(now: Any) -> list[Walkin]:
    return walkins.today(now)


def _version(rows: list[Walkin]) -> str:
    text = ";".join(f"{w.id}:{w.status}:{w.delegate_id or ''}" for w in rows)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _rows_context(now: Any) -> dict[str, Any]:
    rows = _today_walkins(now)
    meetings = {w.meeting for w in rows}
    return {"walkins": rows, "version": _version(rows), "gates": _gates_for(list(meetings)),
            "action_form": ActionForm(), "gate_form": GateForm(),
            "lang": select_locale()}


def _render(form: RegisterForm, meetings: list[Meeting], status: int = 200, **extra: Any) -> Any:
    now = _now()
    return render_template("desk/index.html", form=form, meetings=meetings,
                           policies={m.id: m.walkin_policy for m in meetings}, **_rows_context(now), **extra), status


@bp.get("/")
@roles_required(GUARD)
def index() -> Any:
    """The desk page: the scan and registration form, and today's walk-ins."""
    meetings = walkins.meetings_today(_now())
    form = RegisterForm()
    _meeting_choices(form, meetings)
    if len(meetings) == 1:
        form.meeting_id.data = meetings[0].id
    return _render(form, meetings)


@bp.post("/")
@roles_required(GUARD)
def register() -> Any:
    """Register a walk-in: parse the scan (again), resolve the invitation, call the service."""
    now = _now()
    meetings = walkins.meetings_today(now)
    form = RegisterForm()
    _meeting_choices(form, meetings)
    if not form.validate_on_submit():
        abort(400)
    record: CccdRecord | None = None
    try:
        record = _parse(_scan_text(form))
    except CccdError as exc:
        log.info("desk scan refused reason=%s", exc.reason_code)
        form.scan.errors = [_(exc.message_vi)]
    meeting = next((m for m in meetings if m.id == form.meeting_id.data), None)
    if meeting is None:
        form.meeting_id.errors = [_("Chọn cuộc họp đang diễn ra hôm nay")]
    invitation = _resolve_invitation(form.invitation.data or "", meeting.id) if meeting else None
    if meeting is not None and invitation is None:
        form.invitation.errors = [_("Không tìm thấy thư mời của cuộc họp này (nhập số thư mời hoặc tên đơn vị)")]
    if record is None or meeting is None or invitation is None:
        form.scan.data = ""  # never echo the card's text (it holds the full ID number) back into the page
        return _render(form, meetings, 400)
    try:
        walkin = walkins.register(meeting, invitation, record, current_actor(), secret=_secret(), now=now)
    except ServiceError as exc:
        form.form_errors.append(service_error_message(exc))
        form.scan.data = ""
        return _render(form, meetings, 409)
    if walkin.status == WalkinState.APPROVED:
        flash(_("Đã đăng ký %(name)s: được vào trực tiếp. Cấp mã hoặc mở cổng ở danh sách bên dưới.",
                name=walkin.full_name), "success")
    else:
        flash(_("Đã đăng ký %(name)s: đang chờ chuyên viên duyệt.", name=walkin.full_name), "success")
    return redirect(url_for("desk.index"), 303)


def _json_error(status: int, reason: str, message: str, **extra: Any) -> Any:
    return jsonify({"ok": False, "error": reason, "reason": reason, "message": message, **extra}), status


@bp.post("/quet")
@roles_required(GUARD)
def parse_scan() -> Any:
    """Parse a scan for the form: ``{"text": "..."}`` -> name, date of birth, sex, masked ID (or a reason)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return _json_error(400, "malformed", _("Yêu cầu phải là JSON có trường text"))
    try:
        record = _parse(body["text"])
    except CccdError as exc:
        log.info("desk scan refused reason=%s", exc.reason_code)
        return _json_error(422, exc.reason.value, _(exc.message_vi), problem=str(exc.reason_code))
    return jsonify({
        "ok": True,
        "full_name": record.full_name,
        "date_of_birth": record.date_of_birth.strftime("%d/%m/%Y"),
        "sex": record.sex,
        "id_masked": record.masked_id,
    })


@bp.get("/thu-moi")
@roles_required(GUARD)
def search_invitations() -> Any:
    """Invitations of today's meetings by number or organisation: ``?q=...&meeting_id=...``."""
    query = request.args.get("q", "")[:MAX_QUERY]
    meeting_id = request.args.get("meeting_id", type=int) or None
    found = walkins.find_invitations(query, _now(), meeting_id=meeting_id)
    return jsonify({"invitations": [
        {"id": inv.id, "number": inv.number, "organisation": inv.organisation.name, "meeting_id": inv.meeting_id,
         "meeting_title": inv.meeting.title} for inv in found
    ]})


@bp.get("/khach.json")
@roles_required(GUARD)
def walkins_json() -> Any:
    """Today's walk-ins and a version that changes when any status does (the page polls it)."""
    rows = _today_walkins(_now())
    lang = select_locale()
    return jsonify({"version": _version(rows), "walkins": [walkins.walkin_to_dict(w, lang) for w in rows]})


@bp.get("/danh-sach")
@roles_required(GUARD)
def rows_fragment() -> Any:
    """The rows of today's walk-ins as an HTML fragment (the page swaps it in when the version changes)."""
    return render_template("desk/_rows.html", **_rows_context(_now()))


def _walkin_or_404(walkin_id: int) -> Walkin:
    walkin = Walkin.get_or_none(Walkin.id == walkin_id)
    if walkin is None:
        abort(404)
    return walkin


def _ensure_admitted(walkin: Walkin) -> Walkin:
    """Admit an approved walk-in (issuing the one-day code); an admitted one is returned as is."""
    if walkin.status == WalkinState.ADMITTED:
        return walkin
    context = ctx()
    return walkins.admit(walkin, current_actor(), now=_now(), signing_key=context.signing_key,
                         grace_after_end=context.code_validity.grace_after_end)


@bp.post("/khach/<int:walkin_id>/cho-vao")
@roles_required(GUARD)
def admit(walkin_id: int) -> Any:
    """Admit an approved walk-in and show their one-day code."""
    walkin = _walkin_or_404(walkin_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        walkin = _ensure_admitted(walkin)
    except ServiceError as exc:
        flash(service_error_message(exc), "error")
        return redirect(url_for("desk.index"), 303)
    flash(_("Đã cấp mã một ngày cho %(name)s.", name=walkin.full_name), "success")
    return redirect(url_for("desk.code", walkin_id=walkin.id), 303)


def _admitted_or_404(walkin_id: int) -> tuple[Walkin, Delegate]:
    walkin = _walkin_or_404(walkin_id)
    if walkin.status != WalkinState.ADMITTED or walkin.delegate is None:
        abort(404)
    return walkin, walkin.delegate


@bp.get("/khach/<int:walkin_id>/ma")
@roles_required(GUARD)
def code(walkin_id: int) -> Any:
    """The one-day code on screen (QR and, for compact codes, the short code) with a print view."""
    walkin, delegate = _admitted_or_404(walkin_id)
    qr = segno.make(delegate.code, error="m", boost_error=False, micro=False)
    compact = walkin.meeting.scheme == Scheme.COMPACT.value
    return render_template("desk/code.html", walkin=walkin, delegate=delegate,
                           qr_svg=qr.svg_inline(border=4, omitsize=True, svgclass="qr", title=_("Mã vào cổng")),
                           short_code=format_compact(delegate.code) if compact else None)


@bp.get("/khach/<int:walkin_id>/the.pdf")
@roles_required(GUARD)
def ticket_pdf(walkin_id: int) -> Any:
    """The one-day code as the printable PDF ticket (the same ticket delegates receive)."""
    from central.outbound.tickets.pdf import TicketData, render_ticket_pdf

    walkin, delegate = _admitted_or_404(walkin_id)
    meeting = walkin.meeting
    ticket = TicketData(
        delegate_name=delegate.name, position=delegate.position, organisation=walkin.invitation.organisation.name,
        meeting_title=meeting.title, starts_at=delegate.valid_from, ends_at=delegate.valid_until,
        venue=meeting.venue, invitation_number=walkin.invitation.number or "", code=delegate.code,
        scheme=meeting.scheme,
    )
    response = current_app.response_class(render_ticket_pdf(ticket), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="the-khach-{walkin.id}.pdf"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _gate_outcome(result: Any) -> str:
    """Map the command row ``gate_commands.wait`` returns (status sent/ok/failed/timeout) to ok/failed/timeout."""
    status = getattr(result, "status", None)
    if status == CommandState.OK:
        return CommandState.OK
    return CommandState.TIMEOUT if status is None or status in CommandState.AWAITING else CommandState.FAILED


GATE_MESSAGES = {
    CommandState.OK: "%(gate)s đã mở cho %(name)s.",
    CommandState.FAILED: "%(gate)s không mở được: %(detail)s",
    CommandState.TIMEOUT: "%(gate)s không trả lời trong %(seconds)d giây; kiểm tra cổng và thử lại.",
    "unavailable": "Chức năng mở cổng từ xa chưa sẵn sàng.",
}


@bp.post("/khach/<int:walkin_id>/mo-cong")
@roles_required(GUARD)
def open_gate(walkin_id: int) -> Any:
    """Open a chosen gate once for an approved or admitted walk-in (admitting them first) and wait for the
    gate's answer: ``ok``, ``failed`` or ``timeout``. JSON for the page's script, else a flash. A second open for
    the same admission, or one outside the one-day code's validity, is refused with 409, its ``problem`` and
    ``reason`` (:func:`central.desk.walkins.check_remote_open`), and nothing is sent to the gate."""
    walkin = _walkin_or_404(walkin_id)
    form = GateForm()
    wants_json = request.accept_mimetypes.best == "application/json"
    if not form.validate_on_submit():
        abort(400)
    gate = Gate.get_or_none((Gate.gate_id == (form.gate_id.data or ""))
                                   & (Gate.site_id == walkin.meeting.site_id))
    if gate is None:
        return _gate_reply(walkin, CommandState.FAILED, "", _("Chọn một cổng của địa điểm họp"), wants_json, 400)
    try:
        walkin = _ensure_admitted(walkin)
    except ServiceError as exc:
        return _gate_reply(walkin, CommandState.FAILED, gate.gate_id, service_error_message(exc), wants_json, 409)
    timeout = float(current_app.config.get("DESK_GATE_TIMEOUT", GATE_TIMEOUT_S))
    detail = ""
    try:
        from central.gates import commands as gate_commands
    except ImportError:
        return _gate_reply(walkin, "unavailable", gate.gate_id, "", wants_json, 503)
    actor = current_actor()
    command = None
    outcome: str = CommandState.FAILED
    try:
        command = gate_commands.issue(
            gate.gate_id, "open", actor=actor,
            note=f"Khách tại bàn tiếp đón: {walkin.full_name} ({walkin.id_masked})"[:200],
            meeting_id=walkin.meeting_id, delegate_id=walkin.delegate_id, valid_at=_now(),
        )
    except walkins.WalkinRefusedError as exc:
        # Once per admission, within the one-day code's validity: refused before anything is sent to the gate.
        audit_log.audit(actor, "walkin.open_gate", f"walkin:{walkin.id}",
                        {"gate": gate.gate_id, "result": "refused", "problem": exc.problem,
                         "delegate": walkin.delegate_id, "id": walkin.id_masked}, now=_now())
        log.info("desk open gate refused walkin=%s gate=%s problem=%s", walkin.id, gate.gate_id, exc.problem)
        return _gate_reply(walkin, CommandState.FAILED, gate.gate_id, service_error_message(exc), wants_json, 409,
                           reason=exc.reason.value, problem=exc.problem)
    except ServiceError as exc:
        outcome, detail = CommandState.FAILED, service_error_message(exc)
    if command is not None:
        try:
            result = gate_commands.wait(command.command_id, timeout)
            outcome = _gate_outcome(result)
            reason = getattr(result, "reason", None)
            detail = describe(reason, select_locale()) if reason else ""
        except ServiceError as exc:
            outcome, detail = CommandState.FAILED, service_error_message(exc)
    audit_log.audit(actor, "walkin.open_gate", f"walkin:{walkin.id}",
                    {"gate": gate.gate_id, "result": outcome, "delegate": walkin.delegate_id, "id": walkin.id_masked},
                    now=_now())
    log.info("desk open gate walkin=%s gate=%s result=%s", walkin.id, gate.gate_id, outcome)
    return _gate_reply(walkin, outcome, gate.gate_id, detail, wants_json, 200)


def _gate_reply(walkin: Walkin, outcome: str, gate_id: str, detail: str, wants_json: bool,
                status: int, **refusal: str) -> Any:
    timeout = float(current_app.config.get("DESK_GATE_TIMEOUT", GATE_TIMEOUT_S))
    message = _(GATE_MESSAGES.get(outcome, GATE_MESSAGES[CommandState.FAILED]), gate=gate_title_of(gate_id),
                name=walkin.full_name,
                detail=detail or _("không rõ lý do"), seconds=int(timeout))
    if outcome == CommandState.FAILED and not gate_id:
        message = detail
    if wants_json:
        body = {"ok": outcome == CommandState.OK, "result": outcome, "gate_id": gate_id, "message": message,
                **refusal}
        return jsonify(body), status
    flash(message, "success" if outcome == CommandState.OK else "error")
    return redirect(url_for("desk.index"), 303)
