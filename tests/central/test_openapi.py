"""The OpenAPI document, generated from the routes' models, describes exactly the routes the app serves; its
snapshot schema is the contract's; every error has one body; the constraints the server enforces are in it."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask
from openapi_spec_validator import validate

from central.auth.passwords import MIN_PASSWORD_LENGTH
from protocols.payloads import Snapshot
from tests.central.conftest import API_TOKEN, START, Api
from tests.central.staff import login, make_users, page_token


def _doc(client: Any) -> dict[str, Any]:
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200
    return served.get_json()  # type: ignore[no-any-return]


def _app_operations(app: Flask) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operations.add((path, method.lower()))
    return operations


def test_every_route_is_documented_and_nothing_else(app: Flask, client: Any) -> None:
    doc = _doc(client)
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert documented == _app_operations(app)


def test_the_document_is_valid_openapi_3_1(client: Any) -> None:
    validate(_doc(client))  # raises on the first violation of the OpenAPI 3.1 schema


def test_every_reference_resolves(client: Any) -> None:
    doc = _doc(client)
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    for ref in refs:
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref


def test_snapshot_schema_matches_the_protocol_model(client: Any) -> None:
    doc = _doc(client)
    schema = json.loads(
        json.dumps(Snapshot.model_json_schema()).replace("#/$defs/", "#/components/schemas/")
    )
    defs = schema.pop("$defs")
    assert doc["components"]["schemas"]["Snapshot"] == schema
    for name, definition in defs.items():
        assert doc["components"]["schemas"][name] == definition, name


def test_every_error_answer_has_the_one_error_body(client: Any) -> None:
    doc = _doc(client)
    assert not {"Error", "InvalidError"} & set(doc["components"]["schemas"])
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert operation["security"] is not None
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")) and "content" in response:
                    assert response["content"] == {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                    }, (path, method, code)


def test_the_enforced_constraints_are_in_the_document(client: Any) -> None:
    schemas = _doc(client)["components"]["schemas"]
    meeting = schemas["MeetingCreate"]["properties"]
    assert meeting["title"]["maxLength"] == 500 and meeting["title"]["pattern"] == r"\S"
    assert meeting["main_venue_id"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    assert schemas["VenueCreate"]["properties"]["site_id"]["anyOf"][0]["pattern"] == r"^[a-z0-9][a-z0-9_-]{0,31}$"
    drafts = schemas["InvitationDrafts"]["properties"]
    assert drafts["delegate_limit"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert drafts["organisation_ids"]["minItems"] == 1
    assert set(schemas["UserCreate"]["properties"]["role"]["enum"]) == {
        "administrator", "organiser", "approver", "registrar", "guard"}
    assert schemas["UserCreate"]["properties"]["password"]["minLength"] == MIN_PASSWORD_LENGTH == 12
    assert set(schemas["UserCreate"]["required"]) == {"username", "password", "role"}


def test_a_body_that_breaks_its_model_gets_the_fields_and_a_bad_id_is_not_found(client: Any) -> None:
    token = {"Authorization": "Bearer " + API_TOKEN}
    answer = client.post("/api/v1/meetings", json={"title": " ", "starts_at": "soon", "main_venue_id": 0},
                         headers=token)
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["error"] == "invalid" and body["reason"] == "malformed"
    assert body["fields"]["title"] == "Không được để trống"
    assert {"starts_at", "ends_at", "main_venue_id"} <= set(body["fields"])
    malformed = client.post("/api/v1/meetings", data="{", headers=token, content_type="text/plain")
    assert malformed.status_code == 400 and malformed.get_json()["error"] == "malformed"
    assert client.get(f"/api/v1/meetings/{2**63}", headers=token).status_code == 404
    assert client.post("/api/v1/invitations", json={"meeting_id": 2**64, "organisation_id": 1},
                       headers=token).get_json()["fields"]["meeting_id"] == f"Tối đa {2**63 - 1}"


def test_creating_what_exists_answers_409_with_the_field(app: Flask, client: Any) -> None:
    api = Api(client)

    def conflict(response: Any, field: str) -> None:
        assert response.status_code == 409, response.get_json()
        body = response.get_json()
        assert (body["error"], body["reason"]) == ("conflict", "duplicate") and field in body["fields"]

    first = api.organisation()
    conflict(api.post("/api/v1/organisations", {"name": first["name"]}), "name")
    api.gate("g1")
    conflict(api.post("/api/v1/gates", {"gate_id": "g1", "site_id": "hq"}), "gate_id")
    invitation = api.invitation(organisation_id=first["id"])
    assert api.register(invitation).status_code == 201
    conflict(api.register(invitation, name="Người khác", email="AN.NGUYEN@example.vn"), "email")
    organisation = api.organisation("Sở Xây dựng")["id"]
    drafted = {"meeting_id": invitation["meeting_id"], "organisation_ids": [organisation]}
    assert api.post("/api/v1/invitations/drafts", drafted).status_code == 201
    conflict(api.post("/api/v1/invitations/drafts", drafted), "organisation_ids")

    make_users(START)
    login(client, "admin")
    csrf = {"X-CSRFToken": page_token(client)}
    venue = {"name": "Hội trường B", "kind": "main", "site_id": "hq"}
    assert client.post("/api/v1/venues", json=venue, headers=csrf).status_code == 201
    conflict(client.post("/api/v1/venues", json=venue, headers=csrf), "name")
    user = {"username": "chuyenvien", "password": "mat-khau-rat-dai-123", "role": "organiser"}
    conflict(client.post("/api/v1/users", json=user, headers=csrf), "username")


def test_a_response_that_breaks_its_model_is_a_logged_500_with_the_error_body(
    app: Flask, client: Any, monkeypatch: Any, caplog: Any
) -> None:
    from central.meetings import services as meetings

    monkeypatch.setattr(meetings, "list_meetings", lambda _status=None: [None])
    monkeypatch.setattr(meetings, "meeting_to_dict", lambda _m: {"id": "not a number"})
    answer = client.get("/api/v1/meetings", headers={"Authorization": "Bearer " + API_TOKEN})
    assert answer.status_code == 500
    assert answer.get_json() == {"error": "internal_error", "reason": "internal_error", "message": "Lỗi hệ thống"}
    assert "response breaks its model path=/api/v1/meetings" in caplog.text


def test_a_query_that_breaks_its_model_is_refused_in_vietnamese(client: Any) -> None:
    token = {"Authorization": "Bearer " + API_TOKEN}
    answer = client.get("/api/v1/invitations?meeting_id=abc&status=zz", headers=token)
    assert answer.status_code == 400
    assert answer.get_json()["fields"] == {"meeting_id": "Phải là số nguyên",
                                           "status": "Phải là một trong: draft, returned, approved, sent"}


def test_a_change_needs_only_the_fields_it_changes(app: Flask, client: Any) -> None:
    schemas = _doc(client)["components"]["schemas"]
    for name in ("MeetingUpdate", "VenueUpdate", "OrganisationUpdate", "UserUpdate", "InvitationResubmit"):
        assert "required" not in schemas[name], name
    make_users(START)
    login(client, "admin")
    csrf = {"X-CSRFToken": page_token(client)}
    users = {u["username"]: u["id"] for u in client.get("/api/v1/users").get_json()}
    renamed = client.patch(f"/api/v1/users/{users['baove']}", json={"full_name": "Bảo vệ cổng chính"}, headers=csrf)
    assert renamed.status_code == 200 and renamed.get_json()["full_name"] == "Bảo vệ cổng chính"
