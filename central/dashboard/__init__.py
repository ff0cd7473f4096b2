"""The live attendance dashboard of a meeting (organisers, approvers): counts, arrivals, gates, walk-ins."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("dashboard", __name__, url_prefix="/meetings")

from central.dashboard import views  # noqa: E402,F401 - registers the routes on bp
