"""Server-side sessions: a cookie copied before logout, a password change or a deactivation is refused when
replayed (pages redirect to the login page, the API answers 401); sessions also end after an absolute lifetime,
however active; another web process (another app on the same database) refuses the ended session too."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.app import create_app
from central.auth.models import User, UserSession
from central.core.db import database

from .conftest import Clock
from .staff import login, make_users, page_token, post_form

NEW_PASSWORD = "mat-khau-moi-2026-dai"


@pytest.fixture
def staff(app: Flask, clock: Clock) -> None:
    """One account per role."""
    make_users(clock())


def _cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(client.application.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return cookie.value


def _replay(app: Flask, cookie: str) -> FlaskClient:
    """A fresh client (another browser, the attacker's) holding a copied session cookie."""
    other = app.test_client()
    other.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    return other


def _refused(client: FlaskClient) -> None:
    page = client.get("/meetings/")
    assert page.status_code == 302 and page.location.startswith("/login")
    api = client.get("/api/v1/me")
    assert api.status_code == 401 and api.get_json()["error"] == "unauthorized"


def _accepted(client: FlaskClient, username: str) -> None:
    assert client.get("/api/v1/me").get_json()["username"] == username


def _user_id(username: str) -> int:
    with database.connection_context():
        return int(User.get(User.username == username).id)


def test_a_cookie_copied_before_logout_is_refused_after_it(app: Flask, client: FlaskClient, staff: None) -> None:
    login(client, "chuyenvien")
    copied = _cookie(client)
    _accepted(_replay(app, copied), "chuyenvien")  # the copy works while the session lives
    assert client.post("/logout", data={"csrf_token": page_token(client)}).status_code == 302
    _refused(_replay(app, copied))
    with database.connection_context():
        ended = UserSession.get(UserSession.user == _user_id("chuyenvien"))
        assert ended.end_reason == "logout"
        assert copied not in ended.token_hash  # only the token's hash is stored


def test_another_web_process_refuses_a_session_ended_in_the_first(
    central_config: dict[str, Any], clock: Clock, tmp_path: Path
) -> None:
    key = tmp_path / "secret-key"
    key.write_text("k" * 40, encoding="utf-8")  # the processes share the session key, as gunicorn's workers do
    settings = {**central_config, "VAORA_SECRET_KEY_FILE": str(key)}
    one, two = (create_app(settings, clock=clock) for _ in range(2))
    make_users(clock())
    browser = one.test_client()
    login(browser, "lanhdao")
    copied = _cookie(browser)
    _accepted(_replay(two, copied), "lanhdao")
    browser.post("/logout", data={"csrf_token": page_token(browser)})
    _refused(_replay(two, copied))


def test_a_password_change_ends_every_other_session_of_the_account(
    app: Flask, client: FlaskClient, staff: None
) -> None:
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, "lanhdao")
    login(phone, "lanhdao")
    login(client, "admin")
    admin_elsewhere = app.test_client()
    login(admin_elsewhere, "admin")

    # The administrator changes the approver's password through the API: both of the approver's sessions end.
    token = {"X-CSRFToken": page_token(client, "/admin/users")}
    changed = client.patch(f"/api/v1/users/{_user_id('lanhdao')}", headers=token, json={"password": NEW_PASSWORD})
    assert changed.status_code == 200, changed.get_json()
    _refused(laptop)
    _refused(phone)
    assert login(laptop, "lanhdao", NEW_PASSWORD).status_code == 302
    _accepted(laptop, "lanhdao")

    # The administrator changes their own password on the edit page: this session stays, the other one ends.
    admin = _user_id("admin")
    page = post_form(client, f"/admin/users/{admin}", f"/admin/users/{admin}", {
        "role": "administrator", "full_name": "Admin", "organisation_id": "0", "active": "y",
        "password": NEW_PASSWORD})
    assert page.status_code == 302
    _accepted(client, "admin")
    _refused(admin_elsewhere)
    _accepted(laptop, "lanhdao")  # other accounts' sessions are untouched


def test_a_deactivation_ends_the_sessions_and_a_reactivation_does_not_revive_them(
    app: Flask, client: FlaskClient, staff: None
) -> None:
    guard = app.test_client()
    login(guard, "baove")
    copied = _cookie(guard)
    login(client, "admin")
    token = {"X-CSRFToken": page_token(client, "/admin/users")}
    baove = _user_id("baove")
    assert client.patch(f"/api/v1/users/{baove}", headers=token, json={"active": False}).status_code == 200
    _refused(_replay(app, copied))
    assert client.patch(f"/api/v1/users/{baove}", headers=token, json={"active": True}).status_code == 200
    _refused(_replay(app, copied))
    with database.connection_context():
        assert UserSession.get(UserSession.user == baove).end_reason == "deactivated"


def test_a_session_ends_after_its_absolute_lifetime_however_active(
    client: FlaskClient, staff: None, clock: Clock
) -> None:
    login(client, "chuyenvien")
    for _ in range(12 * 3 - 1):  # busy all day: a request every 20 minutes, never idle
        clock.now += timedelta(minutes=20)
        assert client.get("/meetings/").status_code == 200
    clock.now += timedelta(minutes=20, seconds=1)  # 12 hours and a second after the login
    response = client.get("/meetings/")
    assert response.status_code == 302 and response.location.startswith("/login")
    assert "Phiên đăng nhập đã hết hạn" in client.get(response.location).text
    assert login(client, "chuyenvien").status_code == 302  # a new login starts a new session


def test_the_absolute_lifetime_follows_the_configuration(central_config: dict[str, Any], clock: Clock) -> None:
    app = create_app({**central_config, "VAORA_SESSION_MAX_HOURS": "1"}, clock=clock)
    make_users(clock())
    client = app.test_client()
    login(client, "chuyenvien")
    clock.now += timedelta(minutes=29)
    _accepted(client, "chuyenvien")
    clock.now += timedelta(minutes=29)
    _accepted(client, "chuyenvien")
    clock.now += timedelta(minutes=3)
    _refused(client)
