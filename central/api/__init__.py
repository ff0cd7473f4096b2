"""The JSON API's blueprint (``/api/v1``) and its OpenAPI document, generated from the routes' models.

Each feature adds its routes to :data:`bp` in its own ``api.py`` (``central.meetings.api``, ...), each
decorated with :func:`central.api.spec.validate` and its request and response models (its ``schemas.py``);
:func:`central.features.register_features` imports them all before the blueprint is registered.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from central.api.spec import Responses, document, validate  # noqa: E402  (the spec's helpers import this package)


@bp.get("/openapi.json")
@validate(resp=Responses("HTTP_200"), security=[])
def openapi() -> Any:
    """Return the OpenAPI 3.1 description of this API (generated from the request and response models)."""
    return current_app.json.response(document())
