"""The JSON API of administration: the audit log.

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import jsonify, request

from central.api import bp
from central.auth import roles_required
from central.auth.roles import ADMINISTRATOR
from central.core import audit
from central.core.errors import InvalidInputError


@bp.get("/audit")
@roles_required(ADMINISTRATOR)
def audit_log() -> Any:
    """The audit log, newest first (``?actor=``, ``?action=``, ``?day=YYYY-MM-DD`` in Vietnam time)."""
    raw_day = request.args.get("day")
    day = None
    if raw_day:
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            raise InvalidInputError({"day": "Ngày không hợp lệ, dùng dạng YYYY-MM-DD"}) from None
    entries = audit.search(actor=request.args.get("actor"), action=request.args.get("action"), day=day)
    return jsonify([audit.entry_to_dict(e) for e in entries])
