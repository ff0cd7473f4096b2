"""Attendance routes: the live dashboard (and its large-screen mode), its state as JSON, the event stream, a
manual mark of presence, the decision on walk-ins awaiting approval, the attendance list as XLSX, CSV and PDF,
and the statistics of one meeting or of a range of days. Routes parse, call a service, answer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from central.attendance import services as attendance
from central.attendance import stats
from central.attendance.exports import FORMATS, VIETNAM, export
from central.attendance.live import ALARMS, CHECKINS, CONFLICTS, GATE, WALKINS, get_hub, sse_stream
from central.auth import current_actor, roles_required
from central.auth.roles import APPROVER, GUARD, ORGANISER
from central.core.errors import InvalidInputError, ServiceError
from central.gates import alarms
from central.meetings import services as meetings
from central.meetings.models import Meeting
from central.web import clock_now, service_error_message
from central.web.forms_util import int_or_raw

bp = Blueprint(
    "dashboard", __name__, url_prefix="/meetings", template_folder="templates",
    static_folder="static", static_url_path="/static",
)


STAFF = (ORGANISER, APPROVER)
WALL_FLAG = "man-hinh-lon"


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or request.is_json


def _pending_walkins(meeting: Meeting) -> list[dict[str, Any]]:
    try:
        from central.desk import walkins
    except ImportError:  # pragma: no cover - the desk's service not installed
        return []
    return [walkins.walkin_to_dict(w) for w in walkins.pending(meeting)]


def _state(meeting: Meeting) -> dict[str, Any]:
    hub = get_hub()
    state = attendance.dashboard_state(meeting, clock_now())
    state["walkins"] = _pending_walkins(meeting)
    state["sites"] = attendance.meeting_sites(meeting)
    state["alarms"] = alarms.active_alarms(state["sites"])
    # The stream resumes after this check-in, so nothing stored between this state and the stream is missed.
    state["cursor"] = attendance.last_checkin_id()
    state["epoch"] = hub.epoch
    return state


@bp.get("/<int:meeting_id>/truc-tiep")
@roles_required(*STAFF)
def show(meeting_id: int) -> Any:
    """The live dashboard; ``?man-hinh-lon=1`` is the wall display (big type, no navigation, auto-scroll)."""
    meeting = meetings.get_meeting(meeting_id)
    state = _state(meeting)
    wall = request.args.get(WALL_FLAG) == "1"
    return render_template("dashboard/wall.html" if wall else "dashboard/show.html", meeting=meeting, state=state,
                           wall=wall, alarm_roles=(ORGANISER, GUARD))


@bp.get("/<int:meeting_id>/truc-tiep/trang-thai.json")
@roles_required(*STAFF)
def state_json(meeting_id: int) -> Any:
    """The dashboard's whole state (the page reloads it after a gap in the stream)."""
    return jsonify(_state(meetings.get_meeting(meeting_id)))


@bp.get("/<int:meeting_id>/truc-tiep/khach.json")
@roles_required(*STAFF)
def walkins_json(meeting_id: int) -> Any:
    """Walk-ins of the meeting awaiting approval."""
    return jsonify(_pending_walkins(meetings.get_meeting(meeting_id)))


@bp.get("/<int:meeting_id>/truc-tiep/su-kien")
@roles_required(*STAFF)
def events(meeting_id: int) -> Any:
    """Server-sent events for the dashboard: ``checkins``, ``gate``, ``walkins``, ``alarms`` (every gate's active
    alarms; the page shows those of its meeting's sites), ``conflicts`` (flagged: the page reloads its state),
    ``reset``.

    ``Last-Event-ID`` (sent by the browser on reconnect) resumes the stream; ``?after=<cursor>`` (from the
    page's state) backfills check-ins stored since the page was built.
    """
    meetings.get_meeting(meeting_id)
    hub = get_hub()
    if hub.subscriber_count >= current_app.extensions["vaora"].config.web_streams:
        # This process holds as many streams as it may; the browser's EventSource retries (on another worker).
        return Response("retry: 5000\n\n", status=503, mimetype="text/event-stream", headers={"Retry-After": "5"})
    after = request.args.get("after", "")
    sub = hub.subscribe(
        meeting_id,
        frozenset({CHECKINS, GATE, WALKINS, ALARMS, CONFLICTS}),
        last_event_id=request.headers.get("Last-Event-ID") or None,
        after_checkin=int(after) if after.isdigit() and len(after) < 19 else None,
    )
    keepalive = float(request.args.get("keepalive", "15")) if request.args.get("keepalive", "").isdigit() else 15.0
    return Response(
        sse_stream(hub, sub, keepalive=max(1.0, min(keepalive, 60.0))),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _answer(ok: bool, message: str, meeting_id: int, status: int = 200, **extra: Any) -> Any:
    if _wants_json():
        return jsonify({"ok": ok, "message": message, **extra}), status
    flash(message, "success" if ok else "error")
    return redirect(url_for("dashboard.show", meeting_id=meeting_id), 303)


@bp.post("/<int:meeting_id>/truc-tiep/co-mat")
@roles_required(ORGANISER)
def mark_present(meeting_id: int) -> Any:
    """Mark a delegate present by hand; the reason is required; audited with the organiser's name."""
    meeting = meetings.get_meeting(meeting_id)
    data = {"delegate_id": int_or_raw(request.form.get("delegate_id")), "reason": request.form.get("reason")}
    try:
        checkin = attendance.mark_present(meeting, data, actor=current_actor(), now=clock_now())
    except InvalidInputError as exc:
        return _answer(False, service_error_message(exc), meeting_id, 400, fields=exc.fields)
    except ServiceError as exc:
        return _answer(False, service_error_message(exc), meeting_id, 409, reason=exc.reason.value)
    return _answer(True, _("Đã ghi nhận có mặt (thủ công)."), meeting_id, checkin_id=checkin.id)


def _decide(meeting_id: int, walkin_id: int, decision: str) -> Any:
    from central.desk import walkins

    meeting = meetings.get_meeting(meeting_id)
    try:
        walkin = walkins.get(walkin_id)
    except ServiceError:
        abort(404)
    if walkin.meeting_id != meeting.id:
        abort(404)
    note = request.form.get("note", "")
    try:
        if decision == "approve":
            walkins.approve(walkin_id, current_actor(), note, now=clock_now())
        else:
            walkins.reject(walkin_id, current_actor(), note, now=clock_now())
    except InvalidInputError as exc:
        return _answer(False, service_error_message(exc), meeting_id, 400, fields=exc.fields)
    except ServiceError as exc:
        return _answer(False, service_error_message(exc), meeting_id, 409, reason=exc.reason.value)
    message = _("Đã duyệt khách.") if decision == "approve" else _("Đã từ chối khách.")
    return _answer(True, message, meeting_id)


@bp.post("/<int:meeting_id>/truc-tiep/khach/<int:walkin_id>/duyet")
@roles_required(*STAFF)
def approve_walkin(meeting_id: int, walkin_id: int) -> Any:
    """Approve a walk-in awaiting approval (the guard desk then admits them)."""
    return _decide(meeting_id, walkin_id, "approve")


@bp.post("/<int:meeting_id>/truc-tiep/khach/<int:walkin_id>/tu-choi")
@roles_required(*STAFF)
def reject_walkin(meeting_id: int, walkin_id: int) -> Any:
    """Reject a walk-in; a reason is required."""
    return _decide(meeting_id, walkin_id, "reject")


@bp.get("/<int:meeting_id>/danh-sach-tham-du.<any(xlsx, csv, pdf):format_name>")
@roles_required(*STAFF)
def attendance_list(meeting_id: int, format_name: str) -> Any:
    """The attendance list ("danh sách thành phần tham dự") as a file: XLSX, CSV or printable PDF."""
    written = export(meetings.get_meeting(meeting_id), format_name)
    response = Response(written.content, mimetype=written.mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{written.filename}"'
    response.headers["Cache-Control"] = "no-store"  # names of people: not kept by a shared cache
    return response


@bp.get("/<int:meeting_id>/thong-ke")
@roles_required(*STAFF)
def meeting_statistics(meeting_id: int) -> Any:
    """One meeting's statistics: expected, present, late and absent, by organisation, with the chart."""
    meeting = meetings.get_meeting(meeting_id)
    return render_template("dashboard/statistics.html", meeting=meeting, stats=stats.meeting_statistics(meeting),
                           formats=FORMATS, meetings=[meeting], days=None, errors={})


@bp.get("/thong-ke")
@roles_required(*STAFF)
def range_statistics() -> Any:
    """Statistics over a range of days (``?tu=YYYY-MM-DD&den=YYYY-MM-DD``; this month by default)."""
    today = clock_now().astimezone(VIETNAM).date()
    try:
        days = stats.parse_range(request.args.get("tu"), request.args.get("den"), today)
    except InvalidInputError as exc:
        days = stats.parse_range(None, None, today)
        return render_template("dashboard/statistics.html", meeting=None, stats=None, formats=FORMATS,
                               meetings=[], days=days, errors=exc.fields, asked=request.args), 400
    chosen = stats.meetings_between(days.start, days.end)
    return render_template("dashboard/statistics.html", meeting=None, stats=stats.statistics(chosen),
                           formats=FORMATS, meetings=chosen, days=days, errors={}, asked=request.args)


@bp.app_template_filter("clock_time")
def clock_time(value: str | None) -> str:
    """Format an ISO timestamp as local (Vietnam) ``HH:MM:SS`` ("" for None)."""
    if not value:
        return ""
    from datetime import datetime

    from central.web.filters import LOCAL_TZ

    return datetime.fromisoformat(value).astimezone(LOCAL_TZ).strftime("%H:%M:%S")
