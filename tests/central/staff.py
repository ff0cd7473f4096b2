"""Helpers for tests of the staff pages and the session API: accounts, login, CSRF tokens, a base setup."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from central.auth import users
from central.core.db import database

from .conftest import START

PASSWORD = "mat-khau-rat-dai-123"
ROLES = {"admin": "administrator", "chuyenvien": "organiser", "lanhdao": "approver", "baove": "guard"}

_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def cheap_hashing() -> None:
    """Use argon2's cheapest profile: these tests check behaviour, not hashing cost (2 shared cores)."""
    from argon2 import PasswordHasher, profiles

    from central.auth.passwords import use_hasher

    use_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))


def make_users(now: Any) -> None:
    """Create one account per role in :data:`ROLES`, all with :data:`PASSWORD`."""
    cheap_hashing()
    with database.connection_context():
        for name, role in ROLES.items():
            users.create_user({"username": name, "password": PASSWORD, "role": role, "full_name": name.title()},
                              actor="test", now=now)


def csrf(html: str) -> str:
    """Return the first CSRF token in a page."""
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    """Log in through the form; returns the response."""
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf(page.text)})


def post_form(client: FlaskClient, page_url: str, url: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """Open ``page_url`` for a CSRF token, then POST ``data`` to ``url``."""
    token = csrf(client.get(page_url).text)
    return client.post(url, data={**data, "csrf_token": token}, **kwargs)


def page_token(client: FlaskClient, url: str = "/meetings/") -> str:
    """Return a CSRF token from a page the logged-in user may open (for session API calls)."""
    return csrf(client.get(url).text)


def setup_meeting(app: Flask, client: FlaskClient, *, title: str = "Hội nghị tổng kết công tác năm 2025",
                  orgs: int = 2) -> dict[str, Any]:
    """As the admin (through the pages), add a main hall, a remote point and ``orgs`` organisations; as the
    organiser create a meeting through the API with the token. Returns ids."""
    from .conftest import AUTH, booked_ahead

    login(client, "admin")
    post_form(client, "/admin/venues", "/admin/venues", {"name": "Hội trường tầng 2", "kind": "main",
                                                           "site_id": "hq", "address": "Số 1 Trần Phú"})
    post_form(client, "/admin/venues", "/admin/venues", {"name": "Điểm cầu huyện Sơn Tịnh", "kind": "remote"})
    names = ["Sở Tài chính", "Sở Xây dựng", "Sở Y tế"][:orgs]
    phones = ["0912345678", "0987654321", "0901234567"]
    for index, name in enumerate(names):
        post_form(client, "/admin/organisations", "/admin/organisations", {
            "name": name, "leader_name": "Ông Trần Văn B", "leader_phone": phones[index],
            "office_email": f"vanphong{index}@example.vn",
        })
    client.post("/logout", data={"csrf_token": csrf(client.get("/admin/users").text)})
    org_ids = [o["id"] for o in client.get("/api/v1/organisations", headers=AUTH).get_json()]
    venues = client.get("/api/v1/venues", headers=AUTH).get_json()
    main = next(v["id"] for v in venues if v["kind"] == "main")
    remote = next(v["id"] for v in venues if v["kind"] == "remote")
    body = {"title": title, "starts_at": START.isoformat(), "ends_at": (START + timedelta(hours=3)).isoformat(),
            "main_venue_id": main, "remote_venue_ids": [remote], "chair": "Chủ tịch UBND tỉnh",
            "agenda": "1. Báo cáo tổng kết\n2. Thảo luận"}
    with booked_ahead(app.extensions["vaora"].clock):  # with a remote point: booked 3 working days ahead
        response = client.post("/api/v1/meetings", json=body, headers=AUTH)
    assert response.status_code == 201, response.get_json()
    return {"meeting": response.get_json()["id"], "orgs": org_ids, "main": main, "remote": remote}
