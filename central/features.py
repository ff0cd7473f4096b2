"""Every feature of central, registered on the app in one place.

A feature is a folder (``central/<feature>/``) holding its pages (``views.py`` with its blueprint ``bp``),
its JSON API routes (``api.py``, on the shared ``/api/v1`` blueprint), services, models, forms, templates
and static files. :func:`register_features` is the only place that lists them.
"""

from __future__ import annotations

from importlib import import_module

from flask import Flask

PAGES = (
    "central.web.views",  # the home page
    "central.meetings.views",
    "central.invitations.views",
    "central.admin.views",
    "central.desk.views",  # the guard desk (walk-ins)
    "central.attendance.views",  # live attendance per meeting
    "central.gates.views",  # the gate fleet and its commands
    "central.health.views",  # /healthz and /metrics
    "central.clients.views",  # API clients: one token each (administrators)
    "central.retention.views",  # one person's data: export and erasure (administrators)
)
"""Modules whose ``bp`` is a page blueprint (the login pages are registered by :func:`central.auth.init_auth`)."""

API = (
    "central.auth.api",
    "central.meetings.api",
    "central.invitations.api",
    "central.registration.api",
    "central.attendance.api",
    "central.gates.api",
    "central.admin.api",
    "central.clients.api",  # and the scope check of every client token
)
"""Modules that add routes to the JSON API blueprint (:data:`central.api.bp`)."""


JOB_KINDS = (
    "central.outbound.worker",  # e-mails: ready messages and delegates' codes
    "central.invitations.deliveries",  # an approved invitation's e-mail and SMS
)
"""Modules that register outbound job kinds (:func:`central.outbound.engine.register`)."""


def load_job_kinds() -> None:
    """Register every feature's outbound job kinds in this process (a worker must know them all)."""
    for name in JOB_KINDS:
        import_module(name)


def register_features(app: Flask) -> None:
    """Register the JSON API (with every feature's routes), every page blueprint, the registration pages and
    the outbound job kinds."""
    from central.api import bp as api_bp
    from central.registration import init_registration
    from central.web import csrf

    load_job_kinds()
    for name in API:
        import_module(name)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)  # the API checks CSRF itself for session-authenticated calls (central.auth)
    for name in PAGES:
        app.register_blueprint(import_module(name).bp)
    init_registration(app)
    from central.health.views import init_request_timing

    init_request_timing(app)
