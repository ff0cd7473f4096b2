"""The OpenAPI document describes exactly the routes the app serves; its snapshot schema is the contract's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask import Flask

from protocols.payloads import Snapshot

DOC = Path(__file__).resolve().parents[2] / "central" / "openapi.json"


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
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200
    doc = served.get_json()
    assert doc == json.loads(DOC.read_text(encoding="utf-8"))
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert documented == _app_operations(app)


def test_every_reference_resolves(app: Flask) -> None:
    doc = json.loads(DOC.read_text(encoding="utf-8"))
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


def test_snapshot_schema_matches_the_protocol_model() -> None:
    doc = json.loads(DOC.read_text(encoding="utf-8"))
    schema = json.loads(
        json.dumps(Snapshot.model_json_schema()).replace("#/$defs/", "#/components/schemas/")
    )
    defs = schema.pop("$defs")
    assert doc["components"]["schemas"]["Snapshot"] == schema
    for name, definition in defs.items():
        assert doc["components"]["schemas"][name] == definition, name
