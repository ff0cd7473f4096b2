"""The home page: sends each role to where its work is."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, url_for

from central.auth import current_identity, login_required

bp = Blueprint("web", __name__)


@bp.get("/")
@login_required
def home() -> Any:
    """Leaders land on the invitations awaiting their approval, organisers on meetings, guards on the desk; others
    on a welcome page."""
    identity = current_identity()
    if identity is not None and identity.role == "approver":
        return redirect(url_for("invitations.inbox"))
    if identity is not None and identity.has_role("organiser", "approver"):
        return redirect(url_for("meetings.index"))
    if identity is not None and identity.has_role("guard"):
        return redirect(url_for("desk.index"))
    return render_template("home.html")
