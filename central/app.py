"""The Flask application factory: configuration, database, shared dependencies, blueprints, JSON errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import peewee
from flask import Flask, jsonify, make_response, request
from werkzeug.exceptions import BadRequest, Conflict, HTTPException, ServiceUnavailable
from werkzeug.middleware.proxy_fix import ProxyFix

from central.api.helpers import ApiError, service_error_response
from central.auth import init_auth
from central.config import CentralConfig
from central.core.context import CentralContext, sms_sender_from_config, utc_now
from central.core.db import database, open_database
from central.core.errors import ServiceError
from central.features import register_features
from central.outbound.mail import MailSender, SmtpMailSender
from central.outbound.sms import SmsSender
from central.web import html_error_page, init_web
from central.web.inputs import install_bounded_integers
from protocols.payloads import MAX_PAYLOAD_BYTES
from protocols.reasons import Reason

log = logging.getLogger(__name__)

ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}

BUSY_RETRY_AFTER_S = 2
"""What a request that found the database locked past its busy timeout tells the client to wait."""


def database_busy(exc: BaseException) -> bool:
    """True when ``exc`` is the database refusing for a lock held too long (SQLite's busy timeout, PostgreSQL's
    lock timeout): a transient state the client may retry, not a server fault."""
    text = str(exc).lower()
    return isinstance(exc, peewee.OperationalError) and ("locked" in text or "lock timeout" in text)


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    mail_sender: MailSender | None = None,
    clock: Callable[[], datetime] | None = None,
    sms_sender: SmsSender | None = None,
) -> Flask:
    """Create the central web app.

    ``config`` maps ``VAORA_*`` names to values (tests); without it the environment is read. Other keys
    in the mapping (e.g. ``TESTING``) go to ``app.config``. ``mail_sender`` defaults to SMTP at
    ``VAORA_SMTP_HOST:VAORA_SMTP_PORT``; ``clock`` (returns aware UTC now) defaults to the system clock.
    The database is opened, not built: ``vaora-central migrate`` (or ``init-db``) builds and upgrades it.
    """
    settings = CentralConfig.from_env() if config is None else CentralConfig.from_mapping(config)
    app = Flask(__name__)
    install_bounded_integers(app)  # before any route: ids beyond the database's integers match no route
    app.config["MAX_CONTENT_LENGTH"] = MAX_PAYLOAD_BYTES
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if config is not None:
        app.config.update({k: v for k, v in config.items() if not k.startswith("VAORA_")})

    open_database(settings.database_url, pool_size=settings.db_pool_size)
    if settings.api_token is None:
        log.warning("no API token configured (VAORA_API_TOKEN or VAORA_API_TOKEN_FILE): organiser API closed")
    app.extensions["vaora"] = CentralContext(
        config=settings,
        mail_sender=mail_sender or SmtpMailSender(settings.smtp_host, settings.smtp_port),
        clock=clock or utc_now,
        sms_sender=sms_sender or sms_sender_from_config(settings),
    )
    init_web(app)
    init_auth(app)
    from central.outbound.jobs import init_app as init_mail_queue

    init_mail_queue(app, config)  # VAORA_MAIL_QUEUE / VAORA_MAIL_WORKER; replaces the context's mail sender

    @app.before_request
    def _connect() -> None:
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        if not database.is_closed():
            database.close()

    register_features(app)
    _register_error_handlers(app)
    if settings.proxy_count:
        # Behind nginx: the client's address, scheme and host come from the proxies' X-Forwarded-* headers.
        n = settings.proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Any:
        return service_error_response(exc)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return jsonify(exc.body), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not request.path.startswith("/api/"):
            response = make_response(html_error_page(exc))
        else:
            status = exc.code or 500
            error = ERROR_NAMES.get(status, "http_error")
            response = make_response(jsonify({"error": error, "reason": error, "message": exc.description}), status)
        # The exception's own headers stay: Allow on 405, Retry-After on 429/503, WWW-Authenticate on 401.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(OverflowError)
    def _too_large_a_number(exc: OverflowError) -> Any:
        # A number from outside too large for the database (or a date too far away) reached a query that
        # the edge did not bound: the input is refused, not the server's fault.
        log.warning("number out of range path=%s error=%s", request.path, exc)
        return _http_error(BadRequest("Số quá lớn"))

    @app.errorhandler(peewee.IntegrityError)
    def _lost_a_race(exc: peewee.IntegrityError) -> Any:
        # Two requests created the same thing at once: the check before the insert passed for both, and the
        # database's unique index refused the second. That is the client's duplicate, not a server fault.
        log.warning("integrity error path=%s error=%s", request.path, exc)
        if not request.path.startswith("/api/"):
            return _http_error(Conflict("Dữ liệu đã tồn tại hoặc vừa được thay đổi"))
        body = {"error": "conflict", "reason": Reason.DUPLICATE.value,
                "message": "Dữ liệu đã tồn tại hoặc vừa được thay đổi; vui lòng tải lại và thử lại"}
        return jsonify(body), 409

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if database_busy(exc):
            log.warning("database busy path=%s error=%s", request.path, exc)
            return _http_error(ServiceUnavailable("Hệ thống đang bận, vui lòng thử lại sau giây lát",
                                                  retry_after=BUSY_RETRY_AFTER_S))
        log.exception("unhandled error path=%s", request.path)
        body = {"error": "internal_error", "reason": "internal_error", "message": "Lỗi hệ thống"}
        return jsonify(body), 500
