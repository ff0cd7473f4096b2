"""The WSGI entry point: ``central.wsgi:app`` for any WSGI server (``vaora-central serve`` runs gunicorn on it).

Logging is set up exactly as the command line sets it (``protocols.logs.configure_logging``, level from
``VAORA_LOG_LEVEL``), then the app is built from the ``VAORA_*`` environment.
"""

from __future__ import annotations

import os

from flask import Flask

from protocols.logs import configure_logging


def build_app(*, configure_logs: bool = True) -> Flask:
    """Configure logging like the CLI (unless done already) and return the app built from the environment."""
    from central.app import create_app

    if configure_logs:
        configure_logging("central", os.environ.get("VAORA_LOG_LEVEL", "INFO"))
    return create_app()


def __getattr__(name: str) -> Flask:
    """``central.wsgi:app`` is built on first access, so importing this module has no side effects."""
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
