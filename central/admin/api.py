"""The JSON API of administration: the audit log.

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from central.admin import schemas as s
from central.api import bp
from central.api.spec import Responses, errors, validate, validated_query
from central.auth import roles_required
from central.auth.roles import ADMINISTRATOR
from central.core import audit


@bp.get("/audit")
@roles_required(ADMINISTRATOR)
@validate(query=s.AuditQuery, resp=Responses(HTTP_200=s.AuditLog, **errors(400, 401, 403)))
def audit_log() -> Any:
    """The audit log, newest first (``?actor=``, ``?action=``, ``?day=YYYY-MM-DD`` in Vietnam time)."""
    query = validated_query()
    entries = audit.search(actor=query.actor, action=query.action, day=query.day)
    return jsonify([audit.entry_to_dict(e) for e in entries])
