"""The JSON API's blueprint (``/api/v1``) and its OpenAPI document.

Each feature adds its routes to :data:`bp` in its own ``api.py`` (``central.meetings.api``, ...);
:func:`central.features.register_features` imports them all before the blueprint is registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response

bp = Blueprint("api", __name__, url_prefix="/api/v1")

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.json"


@bp.get("/openapi.json")
def openapi() -> Any:
    """Return the OpenAPI 3.1 description of this API."""
    return Response(OPENAPI_PATH.read_bytes(), mimetype="application/json")
