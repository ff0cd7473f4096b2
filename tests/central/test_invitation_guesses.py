"""Guessing invitation links: one limit across every route that opens an invitation by number and secret (the
registration pages, the registration JSON API, document downloads), counted per (invitation number, client
address), so another number or another address (the right organisation behind a neighbour's NAT) still opens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.meetings import documents
from central.meetings.models import Meeting

from .conftest import Api, Clock

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
NEIGHBOUR = {"REMOTE_ADDR": "198.51.100.7"}
OFFICE = {"REMOTE_ADDR": "198.51.100.8"}


@pytest.fixture
def world(app: Flask, api: Api, clock: Clock, tmp_path: Path) -> dict[str, Any]:
    """One meeting with a document, and two organisations' approved invitations to it."""
    meeting = api.meeting()
    first = api.invitation(meeting["id"], api.organisation("Sở Tài chính")["id"])
    second = api.invitation(meeting["id"], api.organisation("Sở Y tế")["id"])
    with database.connection_context():
        document = documents.add_document(Meeting.get_by_id(meeting["id"]), "chuong-trinh.pdf", PDF,
                                          data_dir=app.extensions["vaora"].config.data_dir, max_bytes=1 << 20,
                                          actor="chuyenvien", now=clock())
        documents.set_shared(document.id, True, actor="chuyenvien", now=clock())  # invitees may download it
    return {"first": first, "second": second, "document": document.id}


def _csrf(client: FlaskClient, environ: dict[str, str]) -> str:
    """A CSRF token anyone can get (from the login page): it does not open an invitation."""
    import re

    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/login", environ_base=environ).text)
    assert match
    return match.group(1)


Try = Callable[[FlaskClient, dict[str, Any], str, dict[str, str]], Any]


def _routes(world: dict[str, Any]) -> dict[str, Try]:
    """Every way to open an invitation by number and secret, each as ``try(client, invitation, secret, env)``."""

    def page(suffix: str, method: str = "get") -> Try:
        def attempt(client: FlaskClient, invitation: dict[str, Any], secret: str, env: dict[str, str]) -> Any:
            url = f"/dang-ky/{invitation['number']}{suffix}?s={quote(secret, safe='')}"
            if method == "get":
                return client.get(url, environ_base=env)
            return client.post(url, data={"csrf_token": _csrf(client, env), "name": "Nguyễn Văn An",
                                          "email": "an@example.vn"}, environ_base=env)
        return attempt

    def api(client: FlaskClient, invitation: dict[str, Any], secret: str, env: dict[str, str]) -> Any:
        return client.post(f"/api/v1/invitations/{invitation['number']}/delegates", environ_base=env,
                           json={"name": "Nguyễn Văn An", "email": "an@example.vn"},
                           headers={"X-Invitation-Secret": secret})

    def document(client: FlaskClient, invitation: dict[str, Any], secret: str, env: dict[str, str]) -> Any:
        return client.get(f"/meetings/documents/{world['document']}", environ_base=env,
                          query_string={"number": invitation["number"], "secret": secret})

    return {
        "page": page(""), "progress": page("/tien-do"), "add": page("/dai-bieu", "post"),
        "edit": page("/dai-bieu/1/sua", "post"), "replace": page("/dai-bieu/1/thay", "post"),
        "remove": page("/dai-bieu/1/xoa", "post"), "send": page("/gui-mail", "post"), "api": api,
        "document": document, "shared_document": page(f"/tai-lieu/{world['document']}"),
    }


def test_guesses_count_across_every_route_together(client: FlaskClient, world: dict[str, Any]) -> None:
    routes = _routes(world)
    first = world["first"]
    names = list(routes)
    # Ten wrong secrets for the first invitation from one address, spread over pages, API and documents.
    for n in range(10):
        wrong = routes[names[n % len(names)]](client, first, f"sai-{n}", NEIGHBOUR)
        assert wrong.status_code == 404, names[n % len(names)]
    # The limit is shared: every route now refuses that address at that number, even with the right secret.
    for name, attempt in routes.items():
        refused = attempt(client, first, f"sai-{name}", NEIGHBOUR)
        assert refused.status_code == 429, name
        assert 1 <= int(refused.headers["Retry-After"]) <= 60, name
    assert routes["page"](client, first, first["secret"], NEIGHBOUR).status_code == 429
    api_refusal = routes["api"](client, first, first["secret"], NEIGHBOUR)
    assert api_refusal.status_code == 429 and api_refusal.get_json()["reason"] == "too_many_guesses"
    assert "quá nhiều lần" in api_refusal.get_json()["message"]
    assert routes["document"](client, first, first["secret"], NEIGHBOUR).status_code == 429

    # Another invitation from the same address, and the right secret from another address, still open.
    second = world["second"]
    assert routes["page"](client, second, second["secret"], NEIGHBOUR).status_code == 200
    assert routes["document"](client, second, second["secret"], NEIGHBOUR).data == PDF
    assert routes["page"](client, first, first["secret"], OFFICE).status_code == 200
    assert routes["api"](client, first, first["secret"], OFFICE).status_code == 201
    assert routes["document"](client, first, first["secret"], OFFICE).data == PDF


def test_seven_routes_times_ten_guesses_do_not_pass(client: FlaskClient, world: dict[str, Any]) -> None:
    """The old limit counted per route: seven routes gave seventy guesses. Now the eleventh is refused."""
    routes = list(_routes(world).items())[:7]
    first = world["first"]
    answers = [attempt(client, first, f"sai-{name}-{n}", NEIGHBOUR).status_code
               for name, attempt in routes for n in range(10)]
    assert answers[:10] == [404] * 10
    assert set(answers[10:]) == {429}


def test_unknown_numbers_and_wrong_secrets_count_alike_and_answer_alike(client: FlaskClient,
                                                                        world: dict[str, Any]) -> None:
    api = _routes(world)["api"]
    unknown = {"number": "999/TM-UBND"}
    wrong = api(client, world["first"], "sai", NEIGHBOUR)
    missing = api(client, unknown, world["first"]["secret"], NEIGHBOUR)
    assert wrong.status_code == missing.status_code == 404 and wrong.get_json() == missing.get_json()
    for n in range(9):
        assert api(client, unknown, f"sai-{n}", NEIGHBOUR).status_code == 404
    assert api(client, unknown, "sai", NEIGHBOUR).status_code == 429, "an unknown number is counted the same"
    assert api(client, world["first"], "sai", NEIGHBOUR).status_code == 404, "its own count: 1 of 10"
