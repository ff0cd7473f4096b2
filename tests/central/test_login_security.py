"""The login throttle and the password policy, as an attacker and an administrator meet them.

- Five wrong passwords for one account within 15 minutes lock it: 429 with ``Retry-After``, a Vietnamese message,
  and the right password refused too, with no password checked; each further lockout lasts twice as long.
- One client address gets 429 after its own limit of failures, whatever names it tries.
- The counts live in the database: two web processes (two apps) share them.
- Every path that sets a password refuses the most common passwords and passwords containing the username.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, profiles
from flask import Flask
from flask.testing import FlaskClient

from central.app import create_app
from central.auth import passwords
from central.auth.models import User
from central.cli import main
from central.core.db import database
from central.core.models import AuditEntry

from .conftest import Clock
from .staff import PASSWORD, csrf, login, make_users, page_token, post_form

WRONG = "sai-mat-khau-000"


class CountingHasher(PasswordHasher):
    """argon2's cheapest profile, counting the password checks it runs."""

    def __init__(self) -> None:
        cheapest = profiles.CHEAPEST
        super().__init__(time_cost=cheapest.time_cost, memory_cost=cheapest.memory_cost,
                         parallelism=cheapest.parallelism, hash_len=cheapest.hash_len, salt_len=cheapest.salt_len)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def hasher(app: Flask, clock: Clock) -> CountingHasher:
    """One account per role, and a hasher that counts the password checks."""
    make_users(clock())
    counting = CountingHasher()
    passwords.use_hasher(counting)
    passwords.dummy_hash()  # made now, so it is not counted as a check later
    counting.verified = 0
    return counting


def _logged_in(client: FlaskClient) -> bool:
    return client.get("/meetings/").status_code == 200


def test_five_failures_lock_the_account_and_the_right_password_is_refused_without_a_check(
    client: FlaskClient, hasher: CountingHasher, clock: Clock
) -> None:
    for _ in range(5):
        assert login(client, "chuyenvien", WRONG).status_code == 400
    assert hasher.verified == 5

    refused = login(client, "chuyenvien")  # the right password, during the lockout
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert "Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau 1 phút." in refused.text
    assert hasher.verified == 5, "a refused attempt checks no password"
    assert not _logged_in(client)

    with database.connection_context():
        lockout = AuditEntry.get(AuditEntry.action == "auth.lockout")
    assert lockout.actor == "chuyenvien" and '"reason": "account_locked"' in lockout.details

    clock.now += timedelta(seconds=30)
    assert login(client, "chuyenvien").headers["Retry-After"] == "30"  # the app's clock counts down
    clock.now += timedelta(seconds=31)
    assert login(client, "chuyenvien").status_code == 302
    assert _logged_in(client)


def test_each_further_lockout_lasts_twice_as_long_and_a_success_starts_over(
    client: FlaskClient, hasher: CountingHasher, clock: Clock
) -> None:
    for _ in range(5):
        login(client, "lanhdao", WRONG)
    waits = []
    for _ in range(3):
        refused = login(client, "lanhdao", WRONG)
        assert refused.status_code == 429
        waits.append(int(refused.headers["Retry-After"]))
        clock.now += timedelta(seconds=waits[-1])
        assert login(client, "lanhdao", WRONG).status_code == 400  # one more try once the lockout ends...
    assert waits == [60, 120, 240]
    assert login(client, "lanhdao", WRONG).headers["Retry-After"] == "480"  # ...which locks it for longer

    clock.now += timedelta(minutes=8)
    assert login(client, "lanhdao").status_code == 302  # the owner's success clears the record
    client.post("/logout", data={"csrf_token": page_token(client)})
    for _ in range(4):
        assert login(client, "lanhdao", WRONG).status_code == 400
    assert login(client, "lanhdao", WRONG).status_code == 400
    assert login(client, "lanhdao", WRONG).headers["Retry-After"] == "60"  # and the delay starts from 1 minute


def test_unknown_names_are_locked_the_same_way(client: FlaskClient, hasher: CountingHasher) -> None:
    """The throttle tells nothing about which accounts exist."""
    for _ in range(5):
        assert login(client, "khongtontai", WRONG).status_code == 400
    assert login(client, "khongtontai", WRONG).status_code == 429
    assert login(client, "KhongTonTai ", WRONG).status_code == 429  # the same name, however typed
    assert login(client, "chuyenvien").status_code == 302  # other accounts are not affected


@pytest.fixture
def address_limited(central_config: dict[str, Any], clock: Clock) -> Flask:
    """An app whose client addresses may fail 6 times within 15 minutes."""
    application = create_app({**central_config, "VAORA_LOGIN_ADDRESS_MAX_FAILURES": "6"}, clock=clock)
    make_users(clock())
    return application


def test_one_address_is_limited_whatever_names_it_tries(address_limited: Flask, clock: Clock) -> None:
    attacker = address_limited.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    for name in ["admin", "chuyenvien", "lanhdao", "baove", "khongco", "admin"]:
        assert login(attacker, name, WRONG).status_code == 400
    refused = login(attacker, "chuyenvien")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) == 15 * 60
    with database.connection_context():
        assert AuditEntry.select().where((AuditEntry.action == "auth.lockout")
                                         & AuditEntry.details.contains("address_limited")).count() == 1

    colleague = address_limited.test_client()
    colleague.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    assert login(colleague, "chuyenvien").status_code == 302  # another address is not affected

    clock.now += timedelta(minutes=15, seconds=1)
    assert login(attacker, "chuyenvien").status_code == 302


def test_two_web_processes_share_the_counts(central_config: dict[str, Any], clock: Clock) -> None:
    """Failures counted by one process (an app) lock the account in the other: the counts are in the database."""
    one, two = (create_app(central_config, clock=clock).test_client() for _ in range(2))
    make_users(clock())
    for client in (one, two, one, two, one):
        assert login(client, "baove", WRONG).status_code == 400
    assert login(two, "baove").status_code == 429


def test_every_hashing_slot_busy_answers_503_with_retry_after(
    client: FlaskClient, hasher: CountingHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passwords, "HASH_WAIT_SECONDS", 0.01)
    slots = passwords._SLOTS
    taken = 0
    while slots.acquire(blocking=False):  # every slot of this process, as long-running hashes would hold them
        taken += 1
    try:
        assert taken == 2  # VAORA_PASSWORD_HASH_CONCURRENCY's default
        busy = login(client, "chuyenvien")
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == str(passwords.BUSY_RETRY_AFTER_SECONDS)
        assert "Hệ thống đang bận" in busy.text
        assert hasher.verified == 0
    finally:
        for _ in range(taken):
            slots.release()
    assert login(client, "chuyenvien").status_code == 302


def test_the_hashing_cap_follows_the_configuration(central_config: dict[str, Any]) -> None:
    create_app({**central_config, "VAORA_PASSWORD_HASH_CONCURRENCY": "3"})
    try:
        slots = passwords._SLOTS
        assert [slots.acquire(blocking=False) for _ in range(4)] == [True, True, True, False]
        for _ in range(3):
            slots.release()
    finally:
        passwords.configure_hashing(2)


COMMON = ["qwerty123456", "1qaz2wsx3edc", "123QWEASDZXC", "LeaveMeAlone"]
"""Among zxcvbn's 30,000 most common passwords (compared case-insensitively), each long enough for the length rule."""


@pytest.mark.parametrize("secret", COMMON)
def test_the_policy_refuses_common_passwords_and_the_username(secret: str) -> None:
    assert passwords.password_problem(secret, "nhanvien2") == (
        "Mật khẩu này quá phổ biến, dễ bị đoán; hãy chọn mật khẩu khác")
    assert passwords.password_problem("NhanVien2-cua-toi", "nhanvien2") == "Mật khẩu không được chứa tên đăng nhập"
    assert passwords.password_problem("ngan", "nhanvien2") == "Mật khẩu phải từ 12 đến 256 ký tự"
    assert passwords.password_problem("mot-mat-khau-dai", "nhanvien2") is None


def test_every_path_that_sets_a_password_applies_the_policy(
    client: FlaskClient, hasher: CountingHasher, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    login(client, "admin")
    # The users page.
    page = post_form(client, "/admin/users", "/admin/users", {
        "username": "nhanvien2", "full_name": "Nhân viên 2", "role": "organiser", "password": "qwerty123456"})
    assert page.status_code == 400 and "Mật khẩu này quá phổ biến" in page.text
    page = post_form(client, "/admin/users", "/admin/users", {
        "username": "nhanvien2", "full_name": "Nhân viên 2", "role": "organiser", "password": "NHANVIEN2-2026"})
    assert page.status_code == 400 and "Mật khẩu không được chứa tên đăng nhập" in page.text
    # The JSON API, creating and changing.
    token = {"X-CSRFToken": page_token(client, "/admin/users")}
    created = client.post("/api/v1/users", headers=token, json={
        "username": "nhanvien3", "role": "organiser", "password": "1qaz2wsx3edc"})
    assert created.status_code == 400
    assert created.get_json()["fields"] == {"password": "Mật khẩu này quá phổ biến, dễ bị đoán; hãy chọn mật khẩu khác"}
    with database.connection_context():
        guard = User.get(User.username == "baove")
    changed = client.patch(f"/api/v1/users/{guard.id}", headers=token, json={"password": "cong-baove-2026"})
    assert changed.get_json()["fields"] == {"password": "Mật khẩu không được chứa tên đăng nhập"}
    # The edit page.
    page = post_form(client, f"/admin/users/{guard.id}", f"/admin/users/{guard.id}", {
        "role": "guard", "full_name": "Baove", "organisation_id": "0", "active": "y", "password": "123456654321"})
    assert page.status_code == 400 and "Mật khẩu này quá phổ biến" in page.text
    with database.connection_context():
        assert User.get_by_id(guard.id).password_hash == guard.password_hash
        assert not User.select().where(User.username.in_(["nhanvien2", "nhanvien3"])).exists()
    # The command line.
    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    secret = tmp_path / "pw"
    secret.write_text("quantri-2026-mat-khau\n", encoding="utf-8")
    assert main(["create-admin", "quantri", "--password-file", str(secret)]) == 2
    assert "Mật khẩu không được chứa tên đăng nhập" in capsys.readouterr().err
    secret.write_text("1q2w3e4r5t6y\n", encoding="utf-8")
    assert main(["create-admin", "quantri", "--password-file", str(secret)]) == 2
    assert "Mật khẩu này quá phổ biến" in capsys.readouterr().err


def test_the_login_page_explains_the_lockout_in_english_too(client: FlaskClient, hasher: CountingHasher) -> None:
    client.get("/login?lang=en")
    for _ in range(5):
        login(client, "chuyenvien", WRONG)
    refused = login(client, "chuyenvien", WRONG)
    assert "Too many failed logins. Please try again in 1 minute(s)." in refused.text
    assert csrf(refused.text)  # the form is shown again
    assert PASSWORD not in refused.text
