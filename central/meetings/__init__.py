"""Meeting pages: list, create, edit, states, documents, and drafting the meeting's invitations."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("meetings", __name__, url_prefix="/meetings")

from central.meetings import views  # noqa: E402,F401 - registers the routes on bp
