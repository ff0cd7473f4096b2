"""Request helpers for the API: JSON bodies, bearer tokens, error responses."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, jsonify, request

from central.core.context import CentralContext
from central.core.errors import ConflictError, DuplicateError, InvalidInputError, NotFoundError, ServiceError
from protocols.reasons import Reason

F = TypeVar("F", bound=Callable[..., Any])


class ApiError(Exception):
    """Abort the request with a JSON error body."""

    def __init__(self, status: int, error: str, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "reason": reason, "message": message, **extra}


def context() -> CentralContext:
    """Return the app's shared dependencies."""
    return current_app.extensions["vaora"]


def json_error(status: int, error: str, reason: str, message: str, **extra: Any) -> tuple[Response, int]:
    """Return a JSON error response."""
    return jsonify({"error": error, "reason": reason, "message": message, **extra}), status


def json_body() -> dict[str, Any]:
    """Return the request body as a JSON object, or raise :class:`ApiError` (400) saying what is wrong.

    A body over the app's ``MAX_CONTENT_LENGTH`` makes Flask answer 413 before parsing.
    """
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "malformed", Reason.MALFORMED, "Nội dung không phải JSON hợp lệ") from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed", Reason.MALFORMED, "Nội dung JSON phải là một đối tượng") from None
    return data


def bearer_token() -> str | None:
    """Return the token of an ``Authorization: Bearer`` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def unauthorized(message: str = "Thiếu hoặc sai mã truy cập") -> tuple[Response, int]:
    """Return a 401 JSON response with a Bearer challenge."""
    response, status = json_error(401, "unauthorized", "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="vaora"'
    return response, status


def require_api_token(view: F) -> F:
    """Allow the view only with ``Authorization: Bearer <API token>`` (constant-time compare)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected = context().config.api_token
        given = bearer_token()
        if not expected or given is None or not hmac.compare_digest(expected.encode(), given.encode()):
            return unauthorized()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def service_error_response(exc: ServiceError) -> tuple[Response, int]:
    """Translate a service failure into its JSON response."""
    if isinstance(exc, DuplicateError):
        return json_error(409, "conflict", exc.reason, exc.message, fields=exc.fields)
    if isinstance(exc, InvalidInputError):
        return json_error(400, "invalid", exc.reason, "Dữ liệu không hợp lệ", fields=exc.fields)
    if isinstance(exc, NotFoundError):
        return json_error(404, "not_found", exc.reason, exc.message)
    if isinstance(exc, ConflictError):
        # Some conflicts say more (e.g. a double-booked hall names the other meeting's id).
        return json_error(409, "conflict", exc.reason, exc.message, **getattr(exc, "details", {}))
    return json_error(400, "refused", exc.reason, exc.message)
