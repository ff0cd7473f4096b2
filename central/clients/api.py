"""The scope check of API clients' tokens on the JSON API.

:func:`enforce_client_scopes` runs before every API route: a request made with a client's token reaches only the
routes its scopes open (:mod:`central.clients.scopes`) and gets 403 everywhere else. Staff sessions and the
operator's configured token are not affected.
"""

from __future__ import annotations

from typing import Any

from flask import request

from central.api import bp
from central.api.helpers import json_error
from central.auth import current_identity
from central.clients.scopes import scope_allows


@bp.before_request
def enforce_client_scopes() -> Any:
    """Answer 403 when a client's token calls a route none of its scopes opens."""
    if not request.headers.get("Authorization"):
        return None
    identity = current_identity()
    if identity is None or identity.scopes is None or scope_allows(identity.scopes, request.endpoint):
        return None
    return json_error(403, "forbidden", "scope_missing",
                      "Mã truy cập của ứng dụng này không có quyền gọi chức năng này",
                      scopes=sorted(identity.scopes))
