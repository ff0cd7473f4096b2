"""The JSON API blueprint (``/api/v1``): organiser operations, delegate registration, gate snapshots."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from central.api import routes, staff  # noqa: E402,F401 - registers the routes on bp
