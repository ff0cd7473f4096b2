"""Invitation pages: the approver's queue, an invitation's page with its sending status, and its actions."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("invitations", __name__, url_prefix="/invitations")

from central.invitations import views  # noqa: E402,F401 - registers the routes on bp
