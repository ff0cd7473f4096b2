"""Registers the staff web blueprints (pages) on the app."""

from __future__ import annotations

from flask import Flask


def register_web_blueprints(app: Flask) -> None:
    """Register home, meetings, invitations and administration pages."""
    from central.admin import bp as admin_bp
    from central.invitations import bp as invitations_bp
    from central.meetings import bp as meetings_bp
    from central.web.views import bp as web_bp

    for blueprint in (web_bp, meetings_bp, invitations_bp, admin_bp):
        app.register_blueprint(blueprint)
