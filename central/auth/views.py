"""Login and logout pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from central.auth import SESSION_SEEN_KEY, bp, current_actor, identity_of, users
from central.core.audit import audit
from central.web import clock_now


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField(_l("Tên đăng nhập"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Mật khẩu"), validators=[DataRequired(), Length(max=256)])


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlparse(target).netloc:
        return target
    return url_for("web.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form; on success start a fresh session and go where the user was heading."""
    form = LoginForm()
    if form.validate_on_submit():
        user = users.authenticate(form.username.data or "", form.password.data or "", now=clock_now())
        if user is None:
            form.password.errors = [_("Sai tên đăng nhập hoặc mật khẩu")]
        else:
            lang = session.get("lang")
            session.clear()
            if lang:
                session["lang"] = lang
            login_user(identity_of(user))
            session[SESSION_SEEN_KEY] = clock_now().timestamp()
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), 200 if request.method == "GET" or not form.errors else 400


@bp.post("/logout")
def logout() -> Any:
    """End the session."""
    actor = current_actor()
    if actor != "anonymous":
        audit(actor, "auth.logout", f"user:{actor}", now=clock_now())
    logout_user()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("Đã đăng xuất."), "info")
    return redirect(url_for("auth.login"))
