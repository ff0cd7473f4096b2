"""OWASP ASVS level 1 for the web app: the session cookie's flags, security headers on every route (walked from
the URL map, anonymous and logged in, errors and static files included), ``Allow`` kept on 405, no 5xx from
integers beyond the database's range in paths, queries and JSON, and documents found with a relative data
folder whatever the working directory."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import peewee
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from central.app import create_app
from central.core.db import database
from central.web.security import CONTENT_SECURITY_POLICY
from devtools import approval

from .conftest import AUTH, Clock
from .staff import login, make_users, page_token, setup_meeting

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
HUGE = (2**63, 2**64, 10**30)
SKIPPED_METHODS = {"HEAD", "OPTIONS"}
STREAMS = {"dashboard.events", "fleet.events", "fleet.alarm_events"}
"""Server-sent event streams: only their headers are read, then they are closed."""


def _session_api(client: FlaskClient) -> dict[str, str]:
    return {"X-CSRFToken": page_token(client)}


@pytest.fixture
def world(app: Flask, client: FlaskClient, clock: Clock) -> dict[str, Any]:
    """Accounts, venues, organisations, a meeting with a document, an approved invitation (drafted, then
    approved by the leader) with a delegate, and a gate; returns the ids every route's arguments need."""
    make_users(clock())
    ids = setup_meeting(app, client)
    meeting = ids["meeting"]
    document = client.post(f"/api/v1/meetings/{meeting}/documents", headers=AUTH,
                           data={"file": (io.BytesIO(PDF), "bao-cao.pdf")}, content_type="multipart/form-data")
    assert document.status_code == 201, document.get_json()
    drafted = client.post("/api/v1/invitations/drafts", headers=AUTH,
                          json={"meeting_id": meeting, "organisation_ids": ids["orgs"][:1]})
    assert drafted.status_code == 201, drafted.get_json()
    invitation_id = drafted.get_json()[0]["id"]
    login(client, "lanhdao")
    approved = client.post(f"/api/v1/invitations/{invitation_id}/approve", headers=_session_api(client))
    assert approved.status_code == 200, approved.get_json()
    client.post("/logout", data={"csrf_token": page_token(client)})
    body = approved.get_json()
    ((_phone, sms),) = app.extensions["vaora"].sms_sender.sent
    secret = approval.registration_link([sms], body["number"]).secret  # the SMS's short link since issue 17
    delegate = client.post(f"/api/v1/invitations/{body['number']}/delegates", headers={"X-Invitation-Secret": secret},
                           json={"name": "Nguyễn Văn An", "email": "an.nguyen@example.vn"})
    assert delegate.status_code == 201, delegate.get_json()
    gate = client.post("/api/v1/gates", headers=AUTH, json={"gate_id": "g1", "site_id": "hq", "name": "Cổng chính"})
    assert gate.status_code == 201, gate.get_json()
    with database.connection_context():
        from central.invitations.models import Delivery

        delivery_id = Delivery.select().first().id
    return {
        "meeting_id": meeting, "document_id": document.get_json()["id"], "invitation_id": invitation_id,
        "delivery_id": delivery_id, "delegate_id": delegate.get_json()["id"], "org_id": ids["orgs"][0],
        "venue_id": ids["main"], "user_id": 1, "walkin_id": 1, "gate_id": "g1", "command_id": "khong-co",
        "number": body["number"], "format_name": "csv", "secret": secret,
    }


def _static_file(app: Flask, endpoint: str) -> str:
    folder = app.static_folder if endpoint == "static" else app.blueprints[endpoint.split(".")[0]].static_folder
    assert folder is not None
    return sorted(p.name for p in Path(folder).iterdir() if p.is_file())[0]


def _url(app: Flask, rule: Rule, values: dict[str, Any], **override: Any) -> str:
    arguments = {}
    for name in rule.arguments:
        if name == "filename":
            arguments[name] = _static_file(app, rule.endpoint)
        else:
            arguments[name] = override.get(name, values.get(name, 1))
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **arguments)


def _rules(app: Flask) -> list[tuple[Rule, str]]:
    return [(rule, method) for rule in app.url_map.iter_rules()
            for method in sorted((rule.methods or set()) - SKIPPED_METHODS)]


def _call(client: FlaskClient, method: str, url: str, endpoint: str, **kwargs: Any) -> Any:
    response = client.open(url, method=method, buffered=endpoint not in STREAMS, **kwargs)
    if endpoint in STREAMS:
        response.close()
    return response


def assert_secure_headers(response: Any, *, static: bool = False, hsts: bool = True) -> None:
    """Every response: CSP without inline script, nosniff, no framing, a referrer policy, HSTS behind https;
    ``no-store`` unless it is a static asset."""
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    headers = response.headers
    assert headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, where
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("Referrer-Policy") == "same-origin", where
    if hsts:
        assert headers.get("Strict-Transport-Security") == "max-age=31536000; includeSubDomains", where
    else:
        assert "Strict-Transport-Security" not in headers, where
    if static:
        assert "no-store" not in headers.get("Cache-Control", ""), where
    else:
        assert headers.get("Cache-Control") == "no-store", where


def test_every_route_anonymous_and_logged_in_carries_the_security_headers(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    rules = _rules(app)
    assert len(rules) > 80
    seen: set[tuple[str, int]] = set()
    for who in ("anonymous", "admin", "chuyenvien", "baove"):
        if who != "anonymous":
            login(client, who)
        for rule, method in rules:
            url = _url(app, rule, world)
            if rule.endpoint.startswith("registration."):  # its pages open with the link's secret (else: guesses)
                url += f"?s={world['secret']}"
            response = _call(client, method, url, rule.endpoint)
            healthz_failing = rule.endpoint == "health.healthz" and response.status_code == 503  # no ingest beat
            assert response.status_code < 500 or healthz_failing, (who, method, url, response.status_code)
            assert_secure_headers(response, static=rule.endpoint.endswith("static"))
            seen.add((rule.endpoint, response.status_code))
        if who != "anonymous":
            client.post("/logout", data={"csrf_token": page_token(client)})
    statuses = {status for _, status in seen}
    assert {200, 302, 400, 401, 403}.issubset(statuses), statuses  # pages, redirects, CSRF, API, roles
    for url, status in (("/khong-co", 404), ("/api/v1/khong-co", 404)):
        response = client.get(url)
        assert response.status_code == status
        assert_secure_headers(response)

    def boom() -> Any:
        raise RuntimeError("boom")

    app.view_functions["web.home"] = boom  # a server error is dressed like any other answer
    failed = client.get("/")
    assert failed.status_code == 500
    assert_secure_headers(failed)
    for response in (client.post("/healthz"), client.delete("/api/v1/meetings")):
        assert response.status_code == 405
        assert_secure_headers(response)
    # The registration page, with its secret in the URL, and the desk's code page are never stored.
    page = client.get(f"/dang-ky/{world['number']}?s={world['secret']}")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "<script>" not in page.text and 'style="' not in page.text


def test_pages_have_no_inline_script_or_style(app: Flask, client: FlaskClient, world: dict[str, Any]) -> None:
    login(client, "admin")
    for url in ("/meetings/", f"/meetings/{world['meeting_id']}", f"/meetings/{world['meeting_id']}/truc-tiep",
                "/cong/", "/cong/canh-bao", "/admin/users", f"/invitations/{world['invitation_id']}", "/ban-tiep-don/"):
        html = client.get(url).text
        assert 'style="' not in html and " onclick=" not in html, url
        for tag in html.split("<script")[1:]:
            opening = tag.split(">", 1)[0]
            assert "src=" in opening or 'type="application/json"' in opening, (url, opening)


def test_the_session_cookie_is_httponly_samesite_lax_and_secure_behind_https(
    central_config: dict[str, Any], clock: Clock
) -> None:
    for public_url, secure in (("https://vaora.example.vn", True), ("http://127.0.0.1:8080", False)):
        app = create_app({**central_config, "VAORA_PUBLIC_URL": public_url}, clock=clock)  # TESTING is True
        client = app.test_client()
        client.get("/login?lang=en")  # the language choice goes into the session: a cookie is set
        cookie = client.get_cookie("__Host-session" if secure else "session")
        assert cookie is not None
        assert cookie.http_only and cookie.same_site == "Lax"
        assert cookie.secure is secure, public_url
        assert cookie.path == "/" and cookie.origin_only  # no Domain attribute: what the __Host- prefix demands
        answer = client.get("/login")
        assert_secure_headers(answer, hsts=secure)
        assert_secure_headers(client.get("/login", base_url="https://localhost"), hsts=True)  # request.is_secure
        database.close()


def test_a_database_locked_past_its_busy_timeout_answers_503_with_retry_after(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock held too long (SQLite's busy timeout on a loaded server) is a 503 the client may retry, documented
    on every operation; any other database error stays a 500."""
    from central.meetings import services as meetings

    def locked(*_args: Any, **_kwargs: Any) -> Any:
        raise peewee.OperationalError("database is locked")

    monkeypatch.setattr(meetings, "list_meetings", locked)
    busy = client.get("/api/v1/meetings", headers=AUTH)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
    assert busy.get_json()["error"] == "unavailable"
    assert_secure_headers(busy, hsts=True)
    doc = client.get("/api/v1/openapi.json").get_json()
    assert all("503" in operation["responses"] for item in doc["paths"].values() for operation in item.values())

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise peewee.OperationalError("no such column: meeting.title")

    monkeypatch.setattr(meetings, "list_meetings", broken)
    assert client.get("/api/v1/meetings", headers=AUTH).status_code == 500


def test_a_create_that_loses_a_race_on_a_unique_key_answers_409(
    client: FlaskClient, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before an insert passes for two concurrent requests; the database's unique index refuses the
    second, which is the client's duplicate (409 with the one error body), not a 500."""
    from central.meetings import venues

    def lost(*_args: Any, **_kwargs: Any) -> Any:
        raise peewee.IntegrityError("UNIQUE constraint failed: venue.name")

    monkeypatch.setattr(venues, "create_venue", lost)
    login(client, "admin")
    answer = client.post("/api/v1/venues", headers={"X-CSRFToken": page_token(client)},
                         json={"name": "Hội trường B", "kind": "main", "site_id": "hq"})
    assert answer.status_code == 409 and answer.get_json()["reason"] == "duplicate", answer.get_json()
    doc = client.get("/api/v1/openapi.json").get_json()
    assert "409" in doc["paths"]["/api/v1/venues"]["post"]["responses"]


def test_a_multipart_part_without_a_name_is_dropped_not_a_500(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    """Found by the API fuzzer: a part whose Content-Disposition has no name reached Flask-WTF's CSRF lookup as
    the key None (AttributeError, 500) on every cookie-authenticated POST, page or API, even before login."""
    boundary = "vaora-fuzz"
    body = (f"--{boundary}\r\nContent-Disposition: form-data\r\n\r\nnull\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\">\"\r\n\r\ntrue\r\n--{boundary}--\r\n").encode()
    multipart = f"multipart/form-data; boundary={boundary}"
    anonymous = client.post("/login", data=body, headers={"Content-Type": multipart})
    assert anonymous.status_code == 400  # the CSRF token is missing: refused, with the page's explanation
    login(client, "admin")
    token = page_token(client)
    for path in (f"/api/v1/meetings/{world['meeting_id']}/documents", f"/meetings/{world['meeting_id']}/edit"):
        answer = client.post(path, data=body, headers={"X-CSRFToken": token, "Content-Type": multipart})
        assert answer.status_code == 400, (path, answer.status_code, answer.text[:200])


def test_405_keeps_its_allow_header_on_pages_and_api(client: FlaskClient) -> None:
    page = client.post("/healthz")
    assert page.status_code == 405 and set(page.headers["Allow"].split(", ")) >= {"GET"}
    api = client.delete("/api/v1/meetings", headers=AUTH)
    assert api.status_code == 405 and api.get_json()["error"] == "method_not_allowed"
    assert set(api.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert api.headers["Content-Type"] == "application/json"


def test_integers_beyond_the_database_never_give_5xx(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    rules = [(rule, method) for rule, method in _rules(app)
             if any(type(c).__name__ == "BoundedIntConverter" for c in rule._converters.values())]
    assert len(rules) > 30
    login(client, "admin")
    token = {"X-CSRFToken": page_token(client)}
    for rule, method in rules:
        int_arguments = [name for name, c in rule._converters.items() if type(c).__name__ == "BoundedIntConverter"]
        for name in int_arguments:
            for huge in HUGE:
                url = _url(app, rule, world, **{name: huge})
                for headers in (AUTH, token):
                    response = _call(client, method, url, rule.endpoint, headers=headers)
                    # no route matches (werkzeug answers 405 when another method's rule has the same shape)
                    assert response.status_code in (404, 405), (method, url, response.status_code)
    # Query parameters read as integers: a huge one counts as absent.
    for url in ("/ban-tiep-don/thu-moi?q=so&meeting_id={}", "/api/v1/invitations?meeting_id={}",
                "/meetings/{}/truc-tiep/trang-thai.json".format(world["meeting_id"]) + "?after={}"):
        for huge in HUGE:
            response = client.get(url.format(huge), headers=AUTH)
            assert response.status_code < 500, (url, huge, response.status_code)
    # JSON and form ids.
    meeting = world["meeting_id"]
    for huge in HUGE:
        answers = [
            client.post("/api/v1/invitations/drafts", headers=AUTH,
                        json={"meeting_id": huge, "organisation_ids": [world["org_id"]]}),
            client.post("/api/v1/invitations/drafts", headers=AUTH,
                        json={"meeting_id": meeting, "organisation_ids": [huge]}),
            client.post("/api/v1/invitations", headers=AUTH, json={"meeting_id": huge, "organisation_id": 1}),
            client.patch(f"/api/v1/meetings/{meeting}", headers=AUTH, json={"main_venue_id": huge}),
            client.patch(f"/api/v1/meetings/{meeting}", headers=AUTH, json={"remote_venue_ids": [huge]}),
            client.post("/api/v1/users", headers=token, json={"username": "x1", "password": "mat-khau-rat-dai-123",
                                                              "role": "registrar", "organisation_id": huge}),
            client.post(f"/meetings/{meeting}/truc-tiep/co-mat", headers=token,
                        data={"delegate_id": str(huge), "csrf_token": token["X-CSRFToken"]}),
            client.post(f"/meetings/{meeting}/invitations", data={"organisation_ids": [str(huge)],
                                                                   "csrf_token": token["X-CSRFToken"]}),
            client.post(f"/meetings/{meeting}/edit", data={"main_venue_id": str(huge), "title": "Họp",
                                                            "csrf_token": token["X-CSRFToken"]}),
        ]
        for answer in answers:
            assert answer.status_code < 500, (answer.request.url, answer.status_code, answer.text[:300])
        # On the API the id's own validator refuses it, naming the field (not the OverflowError safety net).
        for answer in answers[:6]:
            body = answer.get_json()
            assert answer.status_code == 400 and body.get("fields"), (answer.request.url, body)


def test_documents_download_with_a_relative_data_folder_from_another_working_directory(
    central_config: dict[str, Any], clock: Clock, tmp_path: Path
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    previous = os.getcwd()
    os.chdir(home)
    try:
        app = create_app({**central_config, "VAORA_DATA_DIR": "var/data"}, clock=clock)
        os.chdir(elsewhere)  # a worker's working directory differs from where the settings were read
        client = app.test_client()
        make_users(clock())
        ids = setup_meeting(app, client)
        uploaded = client.post(f"/api/v1/meetings/{ids['meeting']}/documents", headers=AUTH,
                               data={"file": (io.BytesIO(PDF), "bien-ban.pdf")}, content_type="multipart/form-data")
        assert uploaded.status_code == 201, uploaded.get_json()
        assert (home / "var" / "data" / "documents").is_dir()
        login(client, "chuyenvien")
        download = client.get(f"/meetings/{ids['meeting']}/documents/{uploaded.get_json()['id']}")
        assert download.status_code == 200 and download.data == PDF
    finally:
        os.chdir(previous)
        database.close()
