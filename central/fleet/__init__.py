"""The gate fleet page (organisers): every gate's state, and commands with their acknowledgement."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("fleet", __name__, url_prefix="/cong")

from central.fleet import views  # noqa: E402,F401 - registers the routes on bp
