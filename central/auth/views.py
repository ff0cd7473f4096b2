"""Login and logout pages.

A login refused by the throttle answers 429 with ``Retry-After`` (and checks no password); one refused because
every password-hashing slot stayed busy answers 503 with ``Retry-After``. Logout ends the session on the server.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlparse

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from central.auth import bp, current_actor, identity_of, sessions, users
from central.auth.passwords import BUSY_RETRY_AFTER_SECONDS, HashingBusyError
from central.auth.throttle import LoginLimits
from central.core.audit import audit
from central.web import clock_now, ctx


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField(_l("Tên đăng nhập"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Mật khẩu"), validators=[DataRequired(), Length(max=256)])


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlparse(target).netloc:
        return target
    return url_for("web.home")


def _refused(form: LoginForm, message: str, status: int, retry_after: int) -> Any:
    form.form_errors.append(message)
    response = render_template("auth/login.html", form=form), status, {"Retry-After": str(retry_after)}
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form; on success start a fresh session and go where the user was heading."""
    form = LoginForm()
    if form.validate_on_submit():
        now = clock_now()
        try:
            user = users.authenticate(form.username.data or "", form.password.data or "", now=now,
                                      address=request.remote_addr, limits=LoginLimits.from_config(ctx().config))
        except users.LoginThrottledError as exc:
            wait = exc.refusal.retry_after(now)
            return _refused(form, _("Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau %(minutes)s phút.",
                                    minutes=math.ceil(wait / 60)), 429, wait)
        except HashingBusyError:
            return _refused(form, _("Hệ thống đang bận, vui lòng thử lại sau ít giây."), 503,
                            BUSY_RETRY_AFTER_SECONDS)
        if user is None:
            form.password.errors = [_("Sai tên đăng nhập hoặc mật khẩu")]
        else:
            lang = session.get("lang")
            session.clear()
            if lang:
                session["lang"] = lang
            session[sessions.TOKEN_KEY] = sessions.start_session(user.id, now=now)
            login_user(identity_of(user))
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), 200 if request.method == "GET" or not form.errors else 400


@bp.post("/logout")
def logout() -> Any:
    """End the session, on the server too: the cookie, replayed later, is refused."""
    actor = current_actor()
    now = clock_now()
    if actor != "anonymous":
        audit(actor, "auth.logout", f"user:{actor}", now=now)
    sessions.end_session(session.get(sessions.TOKEN_KEY), now=now, reason=sessions.LOGOUT)
    logout_user()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("Đã đăng xuất."), "info")
    return redirect(url_for("auth.login"))
