"""Gate fleet routes: the page, its state as JSON and as server-sent events, issuing a command and polling
its answer. Commands go through :mod:`central.gates.commands` (MQTT, acknowledged by the gate).

Gate alarms (:mod:`central.gates.alarms`: a forced door, the emergency input) show on the fleet page, on the live
dashboard and on the alarm page ``/cong/canh-bao``, which guards open too (they do not see the fleet's commands);
a guard or an organiser acknowledges an alarm there (audited)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from central.attendance import services as attendance
from central.attendance.live import ALARMS, GATE, get_hub, sse_stream
from central.auth import current_actor, roles_required
from central.auth.roles import APPROVER, GUARD, ORGANISER
from central.core.errors import InvalidInputError, NotFoundError, ServiceError
from central.core.states import CommandState
from central.gates import alarms as gate_alarms
from central.gates import commands as gate_commands
from central.gates import site_links
from central.meetings.models import Venue
from central.web import clock_now, service_error_message

bp = Blueprint(
    "fleet", __name__, url_prefix="/cong", template_folder="templates",
    static_folder="static", static_url_path="/static",
)


CONFIRM_ACTIONS = ("lockdown", "release")
"""Actions the organiser must confirm (they change what the turnstile does for everyone)."""
RECENT = 50
ALARM_WATCHERS = (ORGANISER, GUARD)
"""Who sees the alarm page and acknowledges alarms (an administrator too); approvers see them on the dashboard."""


def _venue_names() -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for venue in Venue.select().where(Venue.site_id != "").order_by(Venue.name):
        names.setdefault(venue.site_id, []).append(venue.name)
    return names


def _fleet_state() -> dict[str, Any]:
    venues = _venue_names()
    gates = attendance.gate_states(clock_now())
    for gate in gates:
        gate["venues"] = venues.get(gate["site_id"], [])
    return {
        "gates": gates,
        "sites": site_links.site_links(),
        "commands": [gate_commands.command_to_dict(c) for c in gate_commands.recent(limit=RECENT)],
        "timeout_s": gate_commands.DEFAULT_TIMEOUT_S,
        "alarms": gate_alarms.active_alarms(),
    }


def _alarm_state() -> dict[str, Any]:
    return {"alarms": gate_alarms.active_alarms(), "history": gate_alarms.recent_alarms()}


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.get("/")
@roles_required(ORGANISER)
def index() -> Any:
    """Every gate: site, venue, direction, fail mode, version, last heartbeat, online, cache, mode; commands.
    Above them, each site's link to central (its site broker's bridge): a site offline is named first."""
    return render_template("fleet/index.html", state=_fleet_state(), actions=gate_commands.ACTIONS,
                           action_text=gate_commands.ACTION_TEXT, confirm_actions=CONFIRM_ACTIONS)


@bp.get("/trang-thai.json")
@roles_required(ORGANISER)
def state_json() -> Any:
    """The fleet's state (the gates, each site's link: ``sites``) and the recent commands."""
    return jsonify(_fleet_state())


@bp.get("/su-kien")
@roles_required(ORGANISER)
def events() -> Any:
    """Server-sent ``gate`` events (a gate's state changed) and ``alarms`` (the active alarms changed)."""
    hub = get_hub()
    sub = hub.subscribe(None, frozenset({GATE, ALARMS}), last_event_id=request.headers.get("Last-Event-ID") or None)
    return Response(sse_stream(hub, sub), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _answer(ok: bool, message: str, status: int, **extra: Any) -> Any:
    if _wants_json():
        return jsonify({"ok": ok, "message": message, **extra}), status
    flash(message, "success" if ok else "error")
    return redirect(url_for("fleet.index"), 303)


@bp.post("/<gate_id>/lenh")
@roles_required(ORGANISER)
def issue(gate_id: str) -> Any:
    """Send a command to a gate; lock down and release need ``confirm=1`` (the page asks first)."""
    action = request.form.get("action", "")
    if action in CONFIRM_ACTIONS and request.form.get("confirm") != "1":
        return _answer(False, _("Lệnh này cần được xác nhận."), 400, reason="confirmation_required")
    try:
        command = gate_commands.issue(gate_id, action, current_actor(), note=request.form.get("note", ""))
    except InvalidInputError as exc:
        return _answer(False, service_error_message(exc), 400, reason=exc.reason.value, fields=exc.fields)
    except NotFoundError as exc:
        return _answer(False, service_error_message(exc), 404, reason=exc.reason.value)
    except ServiceError as exc:
        return _answer(False, service_error_message(exc), 409 if exc.reason.value != "not_connected" else 503,
                       reason=exc.reason.value)
    body = gate_commands.command_to_dict(command)
    return _answer(True, _("Đã gửi lệnh, đang chờ cổng trả lời."), 202, command=body,
                   timeout_s=gate_commands.DEFAULT_TIMEOUT_S)


@bp.get("/lenh/<command_id>.json")
@roles_required(ORGANISER)
def command_json(command_id: str) -> Any:
    """A command's status; once its timeout has passed unanswered it becomes ``timeout``."""
    try:
        command = gate_commands.get(command_id)
    except NotFoundError:
        return jsonify({"error": "not_found", "reason": "unknown_code"}), 404
    deadline = command.issued_at + timedelta(seconds=gate_commands.DEFAULT_TIMEOUT_S)
    # Real time: the gate's answer is real too.
    if command.status == CommandState.SENT and datetime.now(UTC) >= deadline:
        command = gate_commands.wait(command.command_id, timeout=0)
    return jsonify(gate_commands.command_to_dict(command))


# --- alarms ------------------------------------------------------------------------------------------------


@bp.get("/canh-bao")
@roles_required(*ALARM_WATCHERS)
def alarm_page() -> Any:
    """Active alarms (acknowledge buttons) and the history, kept current over server-sent events."""
    return render_template("fleet/alarms.html", state=_alarm_state())


@bp.get("/canh-bao.json")
@roles_required(*ALARM_WATCHERS, APPROVER)
def alarms_json() -> Any:
    """The active alarms and the history."""
    return jsonify(_alarm_state())


@bp.get("/canh-bao/su-kien")
@roles_required(*ALARM_WATCHERS)
def alarm_events() -> Any:
    """Server-sent ``alarms`` events: the active alarms, whenever they change."""
    hub = get_hub()
    sub = hub.subscribe(None, frozenset({ALARMS}), last_event_id=request.headers.get("Last-Event-ID") or None)
    return Response(sse_stream(hub, sub), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.post("/canh-bao/<int:alarm_id>/xac-nhan")
@roles_required(*ALARM_WATCHERS)
def acknowledge_alarm(alarm_id: int) -> Any:
    """Acknowledge an alarm (an optional note); it leaves the active panels and stays in the history."""
    try:
        alarm = gate_alarms.acknowledge(alarm_id, {"note": request.form.get("note", "")}, actor=current_actor(),
                                        now=clock_now())
    except InvalidInputError as exc:
        return _alarm_answer(False, service_error_message(exc), 400, reason=exc.reason.value, fields=exc.fields)
    except NotFoundError as exc:
        return _alarm_answer(False, service_error_message(exc), 404, reason=exc.reason.value)
    except ServiceError as exc:
        return _alarm_answer(False, service_error_message(exc), 409, reason=exc.reason.value)
    return _alarm_answer(True, _("Đã xác nhận cảnh báo."), 200, alarm=gate_alarms.alarm_to_dict(alarm))


def _alarm_answer(ok: bool, message: str, status: int, **extra: Any) -> Any:
    if _wants_json():
        return jsonify({"ok": ok, "message": message, **extra}), status
    flash(message, "success" if ok else "error")
    target = request.referrer if request.referrer and request.referrer.startswith(request.host_url) else None
    return redirect(target or url_for("fleet.alarm_page"), 303)
