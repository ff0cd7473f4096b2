"""Shared web plumbing: secret key, cookie flags and security headers (``security.py``), CSRF, Babel
(Vietnamese first, English), error pages and view helpers.

Pages of every blueprint extend ``templates/base.html`` (blocks ``title`` and ``content``) and use these
helpers: :func:`clock_now`, :func:`ctx`, :func:`apply_field_errors`, :func:`save_form`,
:func:`service_error_message`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import Babel
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from central.core.context import CentralContext
from central.core.errors import InvalidInputError, ServiceError
from central.web.i18n import LANGUAGES, translation_directory

log = logging.getLogger(__name__)

csrf = CSRFProtect()
babel = Babel()


def ctx() -> CentralContext:
    """Return the app's shared dependencies."""
    return current_app.extensions["vaora"]


def clock_now() -> datetime:
    """Return now from the app's clock (tests freeze it)."""
    return ctx().clock()


def select_locale() -> str:
    """Return the UI language: the session's choice (set by ``?lang=``), Vietnamese by default."""
    lang = session.get("lang")
    return lang if lang in LANGUAGES else "vi"


def _remember_language() -> None:
    lang = request.args.get("lang")
    if lang in LANGUAGES:
        session["lang"] = lang


UPLOAD_ENDPOINTS = {"meetings.upload_document", "api.upload_document"}
"""Endpoints that accept files up to ``VAORA_MAX_UPLOAD_MB`` instead of the app-wide 64 KiB limit."""
FORM_OVERHEAD = 64 * 1024


def upload_limit() -> int:
    """Return the largest document accepted, in bytes."""
    return ctx().config.max_upload_mb * 1024 * 1024


def _allow_uploads() -> None:
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = upload_limit() + FORM_OVERHEAD


def apply_field_errors(form: FlaskForm, exc: InvalidInputError, mapping: dict[str, str] | None = None) -> None:
    """Show a service's per-field messages on the matching form fields (unmatched ones on the form)."""
    mapping = mapping or {}
    leftovers = []
    for name, message in exc.fields.items():
        field = getattr(form, mapping.get(name, name), None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*list(field.errors or []), _(message)]
        else:
            leftovers.append(f"{name}: {_(message)}")
    if leftovers:
        form.form_errors.extend(leftovers)


def save_form(form: FlaskForm, save: Callable[[], object], done: str, endpoint: str, *,
              flash_service_errors: bool = False) -> Any | None:
    """Run ``save`` (a service call) for a submitted form: on success flash ``done`` and return the redirect to
    ``endpoint``; on invalid input put the service's messages on the form's fields and return None (the caller
    shows the form again, status 400). With ``flash_service_errors`` any other service failure is flashed
    instead of raised."""
    try:
        save()
    except InvalidInputError as exc:
        apply_field_errors(form, exc)
        return None
    except ServiceError as exc:
        if not flash_service_errors:
            raise
        flash(service_error_message(exc), "error")
        return None
    flash(done, "success")
    return redirect(url_for(endpoint))


def service_error_message(exc: ServiceError) -> str:
    """Return the message of a service failure for a flash."""
    if isinstance(exc, InvalidInputError):
        return "; ".join(_(message) for message in exc.fields.values())
    return _(exc.message)


def html_error_page(exc: HTTPException) -> Any:
    """Render an HTTP error as a page in the user's language (CSRF failures explained)."""
    messages = {
        400: _("Yêu cầu không hợp lệ."),
        403: _("Bạn không có quyền truy cập trang này."),
        404: _("Không tìm thấy trang."),
        405: _("Phương thức không được hỗ trợ."),
        413: _("Tệp hoặc dữ liệu gửi lên quá lớn."),
    }
    status = exc.code or 500
    message = messages.get(status, _("Lỗi hệ thống."))
    if isinstance(exc, CSRFError):
        message = _("Biểu mẫu đã hết hạn hoặc thiếu mã bảo vệ (CSRF). Vui lòng tải lại trang và thử lại.")
    return render_template("error.html", status=status, message=message), status


def init_web(app: Flask) -> None:
    """Configure the secret key, the session cookie, security headers, CSRF protection (app-wide), Babel and
    the HTML error pages."""
    settings = ctx_from(app).config
    if settings.secret_key:
        app.secret_key = settings.secret_key
    elif not app.secret_key:
        log.warning("no VAORA_SECRET_KEY_FILE: sessions use a random key and end when central restarts")
        app.secret_key = secrets.token_urlsafe(32)
    from central.web.security import init_security

    init_security(app, ctx_from(app))  # the session cookie's flags and the security headers
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the session's idle timeout bounds it
    app.config["BABEL_DEFAULT_LOCALE"] = "vi"
    app.config["BABEL_DEFAULT_TIMEZONE"] = "Asia/Ho_Chi_Minh"
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(translation_directory())
    app.before_request(_remember_language)
    app.before_request(_allow_uploads)  # before CSRFProtect reads the form
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        from central.auth import current_identity
        from central.auth.roles import ROLE_LABELS_VI

        return {"identity": current_identity(), "lang": select_locale(), "role_labels": ROLE_LABELS_VI,
                "languages": LANGUAGES}

    from central.web.filters import register_filters

    register_filters(app)


def ctx_from(app: Flask) -> CentralContext:
    """Return the shared dependencies of ``app`` (outside a request)."""
    return app.extensions["vaora"]
