"""The last active administrator can be neither demoted nor deactivated, on the users page and through the JSON
API (``PATCH /api/v1/users/<id>``), not even by a fuzzer sending whatever bodies it likes."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.auth import users
from central.auth.models import User
from central.auth.roles import ADMINISTRATOR, ROLES
from central.core.db import database
from central.core.errors import InvalidInputError

from .conftest import Clock
from .staff import ROLES as STAFF
from .staff import login, make_users, page_token, post_form

LAST = "Phải còn ít nhất một quản trị hệ thống đang hoạt động"


@pytest.fixture
def admin_client(app: Flask, client: FlaskClient, clock: Clock) -> FlaskClient:
    """One account per role (one administrator), the administrator logged in."""
    make_users(clock())
    login(client, "admin")
    return client


def _admins() -> list[str]:
    with database.connection_context():
        return sorted(u.username for u in User.select().where((User.role == ADMINISTRATOR) & User.active))


def _id(username: str) -> int:
    with database.connection_context():
        return int(User.get(User.username == username).id)


def test_the_api_refuses_to_demote_or_deactivate_the_only_administrator(admin_client: FlaskClient) -> None:
    token = {"X-CSRFToken": page_token(admin_client, "/admin/users")}
    admin = _id("admin")
    demoted = admin_client.patch(f"/api/v1/users/{admin}", headers=token, json={"role": "organiser"})
    assert demoted.status_code == 400
    assert demoted.get_json()["fields"] == {"role": LAST}
    deactivated = admin_client.patch(f"/api/v1/users/{admin}", headers=token, json={"active": False})
    assert deactivated.status_code == 400 and deactivated.get_json()["fields"] == {"active": LAST}
    assert _admins() == ["admin"]

    # With a second administrator, one of them may step down, and then the other is the last one.
    second = admin_client.patch(f"/api/v1/users/{_id('chuyenvien')}", headers=token, json={"role": ADMINISTRATOR})
    assert second.status_code == 200
    assert admin_client.patch(f"/api/v1/users/{admin}", headers=token, json={"active": False}).status_code == 200
    assert _admins() == ["chuyenvien"]


def test_the_users_page_refuses_it_too(admin_client: FlaskClient) -> None:
    admin = _id("admin")
    page = post_form(admin_client, f"/admin/users/{admin}", f"/admin/users/{admin}", {
        "role": "guard", "full_name": "Admin", "organisation_id": "0", "active": "y"})
    assert page.status_code == 400 and LAST in page.text
    page = post_form(admin_client, f"/admin/users/{admin}", f"/admin/users/{admin}", {
        "role": ADMINISTRATOR, "full_name": "Admin", "organisation_id": "0"})  # the box unticked: inactive
    assert page.status_code == 400 and LAST in page.text
    assert _admins() == ["admin"]
    assert admin_client.get("/admin/users").status_code == 200  # still an administrator, still logged in


BODIES = st.fixed_dictionaries({}, optional={
    "role": st.one_of(st.sampled_from(ROLES), st.text(max_size=20), st.none(), st.integers()),
    "active": st.one_of(st.booleans(), st.none(), st.integers(), st.text(max_size=5)),
    "full_name": st.text(max_size=30),
    "organisation_id": st.one_of(st.none(), st.integers(-1, 3)),
})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(["admin", "chuyenvien", "lanhdao", "baove"]), body=BODIES)
def test_a_fuzzer_on_the_api_never_leaves_no_administrator(
    admin_client: FlaskClient, target: str, body: dict[str, Any]
) -> None:
    with database.connection_context():  # each example starts from the one-administrator staff
        for name, role in STAFF.items():
            User.update(role=role, active=True).where(User.username == name).execute()
    if admin_client.get("/api/v1/me").status_code != 200:
        login(admin_client, "admin")
    token = {"X-CSRFToken": page_token(admin_client, "/admin/users")}
    answer = admin_client.patch(f"/api/v1/users/{_id(target)}", headers=token, json=body)
    assert answer.status_code in (200, 400), answer.get_data(as_text=True)
    assert "admin" in _admins(), f"{body} on {target} left no active administrator"


def test_two_administrators_stepping_down_at_once_leave_one(app: Flask, clock: Clock) -> None:
    """Each demotes themselves at the same moment, from its own thread: one of them must be refused."""
    make_users(clock())
    with database.connection_context():
        users.update_user(_id("chuyenvien"), {"role": ADMINISTRATOR}, actor="test", now=clock())
    barrier = threading.Barrier(2)
    refused: list[str] = []

    def step_down(name: str) -> None:
        barrier.wait()
        with database.connection_context():
            try:
                users.update_user(_id(name), {"role": "guard"}, actor=name, now=clock())
            except InvalidInputError:
                refused.append(name)

    threads = [threading.Thread(target=step_down, args=(name,)) for name in ("admin", "chuyenvien")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(refused) == 1
    assert len(_admins()) == 1
