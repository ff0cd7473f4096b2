"""Administration pages: users, organisations, venues and the audit log (administrators only)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from central.admin import views  # noqa: E402,F401 - registers the routes on bp
