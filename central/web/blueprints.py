"""Registers the staff web blueprints (pages) on the app."""

from __future__ import annotations

from flask import Flask


def register_web_blueprints(app: Flask) -> None:
    """Register home, meetings, invitations and administration pages."""
    from central.admin import bp as admin_bp
    from central.desk import bp as desk_bp
    from central.invitations import bp as invitations_bp
    from central.meetings import bp as meetings_bp
    from central.web.views import bp as web_bp

    for blueprint in (web_bp, meetings_bp, invitations_bp, admin_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(desk_bp)  # the guard desk (walk-ins)
    from central.dashboard import bp as dashboard_bp
    from central.fleet import bp as fleet_bp

    app.register_blueprint(dashboard_bp)  # live attendance per meeting
    app.register_blueprint(fleet_bp)  # the gate fleet and its commands
