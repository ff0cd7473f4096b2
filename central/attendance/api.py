"""The JSON API of attendance: who was expected at a meeting and who entered.

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from central.api import bp
from central.api.spec import Responses, errors, validate
from central.attendance import schemas as a
from central.attendance import services as attendance
from central.auth import roles_required
from central.auth.roles import APPROVER, ORGANISER
from central.meetings import services as meetings


@bp.get("/meetings/<int:meeting_id>/attendance")
@roles_required(ORGANISER, APPROVER)
@validate(resp=Responses(HTTP_200=a.Attendance, **errors(401, 403, 404)))
def get_attendance(meeting_id: int) -> Any:
    """Return who was expected and who entered."""
    return jsonify(attendance.meeting_attendance(meetings.get_meeting(meeting_id)))
