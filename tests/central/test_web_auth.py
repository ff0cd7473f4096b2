"""Accounts, login, roles, CSRF, idle sessions and language, as a user of the pages and the API sees them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.auth.models import User
from central.auth.users import authenticate
from central.cli import main
from central.core.db import database, open_database
from central.core.models import AuditEntry

from .conftest import AUTH, Clock
from .staff import PASSWORD, csrf, login, make_users, page_token, post_form


@pytest.fixture
def staff(app: Flask, clock: Clock) -> None:
    """One account per role."""
    make_users(clock())


def test_pages_need_login_and_login_works(client: FlaskClient, staff: None) -> None:
    response = client.get("/meetings/")
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")

    wrong = login(client, "chuyenvien", "sai-mat-khau-000")
    assert wrong.status_code == 400
    assert "Sai tên đăng nhập hoặc mật khẩu" in wrong.text

    ok = login(client, "chuyenvien")
    assert ok.status_code == 302
    page = client.get("/meetings/")
    assert page.status_code == 200
    assert "Chuyên viên văn phòng" in page.text


def test_passwords_are_argon2_and_unknown_users_fail(app: Flask, staff: None, clock: Clock) -> None:
    with database.connection_context():
        user = User.get(User.username == "lanhdao")
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert authenticate("khongco", PASSWORD, now=clock()) is None
        assert authenticate("lanhdao", PASSWORD, now=clock()).id == user.id


def test_wrong_role_is_403_on_pages_and_api(client: FlaskClient, staff: None) -> None:
    login(client, "chuyenvien")
    page = client.get("/admin/users")
    assert page.status_code == 403
    assert "Bạn không có quyền truy cập trang này." in page.text
    assert client.get("/api/v1/audit").status_code == 403
    assert client.get("/api/v1/audit").get_json()["error"] == "forbidden"

    client.post("/logout", data={"csrf_token": page_token(client)})
    login(client, "baove")
    assert client.get("/meetings/").status_code == 403
    # The API token acts as an organiser: it may not approve, nor read the audit log.
    assert client.post("/api/v1/invitations/1/approve", headers=AUTH).status_code == 403
    assert client.get("/api/v1/audit", headers=AUTH).status_code == 403


def test_missing_csrf_token_is_400_and_changes_nothing(client: FlaskClient, staff: None) -> None:
    login(client, "admin")
    response = client.post("/admin/venues", data={"name": "Hội trường B", "kind": "main", "site_id": "hq"})
    assert response.status_code == 400
    assert "thiếu mã bảo vệ (CSRF)" in response.text
    assert "Hội trường B" not in client.get("/admin/venues").text
    # The same rule for a logged-in session calling the API (the bearer token needs none).
    api = client.post("/api/v1/venues", json={"name": "Hội trường B", "kind": "main", "site_id": "hq"})
    assert api.status_code == 400
    ok = client.post("/api/v1/venues", json={"name": "Hội trường B", "kind": "main", "site_id": "hq"},
                     headers={"X-CSRFToken": page_token(client, "/admin/venues")})
    assert ok.status_code == 201


def test_idle_session_expires_and_redirects_to_login(client: FlaskClient, staff: None, clock: Clock) -> None:
    login(client, "chuyenvien")
    assert client.get("/meetings/").status_code == 200
    clock.now += timedelta(minutes=29)
    assert client.get("/meetings/").status_code == 200  # activity keeps the session alive
    clock.now += timedelta(minutes=31)
    response = client.get("/meetings/")
    assert response.status_code == 302
    assert response.location.startswith("/login")
    assert "Phiên đăng nhập đã hết hạn" in client.get(response.location).text


def test_language_switch_is_remembered(client: FlaskClient, staff: None) -> None:
    page = client.get("/login")
    assert '<html lang="vi">' in page.text and "Đăng nhập" in page.text
    english = client.get("/login?lang=en")
    assert '<html lang="en">' in english.text
    assert "Log in" in english.text and "Password" in english.text
    assert "Log in" in client.get("/login").text  # kept in the session
    assert "Đăng nhập" in client.get("/login?lang=vi").text


def test_logout_ends_the_session(client: FlaskClient, staff: None) -> None:
    login(client, "chuyenvien")
    assert client.post("/logout", data={"csrf_token": page_token(client)}).status_code == 302
    assert client.get("/meetings/").status_code == 302


def test_admin_manages_users_and_the_audit_log_shows_it(client: FlaskClient, staff: None) -> None:
    login(client, "admin")
    response = post_form(client, "/admin/users", "/admin/users", {
        "username": "dangky1", "full_name": "Cán bộ đăng ký", "role": "registrar", "organisation_id": "0",
        "password": "mot-mat-khau-dai",
    })
    assert response.status_code == 400
    assert "Cán bộ đăng ký phải thuộc một đơn vị" in response.text
    response = post_form(client, "/admin/users", "/admin/users", {
        "username": "nhanvien2", "full_name": "Nhân viên <b>2</b>", "role": "organiser", "password": "ngan",
    })
    assert response.status_code == 400
    assert "Mật khẩu phải từ 12 đến 256 ký tự" in response.text
    response = post_form(client, "/admin/users", "/admin/users", {
        "username": "nhanvien2", "full_name": "Nhân viên <b>2</b>", "role": "organiser",
        "password": "mot-mat-khau-dai",
    })
    assert response.status_code == 302
    listing = client.get("/admin/users").text
    assert "Nhân viên &lt;b&gt;2&lt;/b&gt;" in listing and "<b>2</b>" not in listing

    audit = client.get("/admin/audit?action=user.create").text
    assert "nhanvien2" in audit and "admin" in audit
    filtered = client.get("/admin/audit?actor=nobody").text
    assert "Không có mục nào." in filtered
    bad_day = client.get("/admin/audit?day=31-02-2025")
    assert bad_day.status_code == 400 and "Ngày không hợp lệ" in bad_day.text
    api = client.get("/api/v1/audit?action=auth.login").get_json()
    assert {entry["actor"] for entry in api} == {"admin"}


def test_create_admin_cli(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    secret = tmp_path / "pw"
    secret.write_text("mat-khau-quan-tri\n", encoding="utf-8")
    assert main(["create-admin", "quantri", "--password-file", str(secret)]) == 0
    assert "quantri" in capsys.readouterr().out
    assert main(["create-admin", "quantri", "--password-file", str(secret)]) == 2
    assert "Tên đăng nhập đã tồn tại" in capsys.readouterr().err
    short = tmp_path / "short"
    short.write_text("abc", encoding="utf-8")
    assert main(["create-admin", "khac", "--password-file", str(short)]) == 2
    open_database(database_url)
    with database.connection_context():
        user = User.get(User.username == "quantri")
        assert user.role == "administrator"
        assert AuditEntry.get(AuditEntry.action == "user.create").actor == "cli"
    database.obj.close()


def test_login_form_has_csrf_and_labels(client: FlaskClient) -> None:
    page = client.get("/login").text
    assert csrf(page)
    assert '<label for="username">' in page and '<label for="password">' in page
    assert 'class="skip-link" href="#main"' in page
