"""The command line: init-db, add-gate (token printed once, stored hashed), issue-api-token, bad config."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from central.cli import main
from central.core.db import database, open_database
from central.gates.models import Gate
from central.gates.registry import authenticate_gate


def test_init_db_and_add_gate(
    monkeypatch: pytest.MonkeyPatch, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    assert main(["init-db"]) == 0
    assert main(["add-gate", "g7", "--site", "hq", "--name", "Cổng phụ", "--direction", "out"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["add-gate", "g7", "--site", "hq"]) == 2
    assert main(["add-gate", "Bad Id", "--site", "hq"]) == 2
    open_database(database_url)
    with database.connection_context():
        gate = Gate.get(Gate.gate_id == "g7")
        assert (gate.site_id, gate.name, gate.direction) == ("hq", "Cổng phụ", "out")
        assert token not in gate.token_hash
        assert authenticate_gate("g7", token) is not None
        assert authenticate_gate("g7", token + "x") is None
    database.obj.close()


def test_bad_configuration_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAORA_SMTP_PORT", "nope")
    assert main(["init-db"]) == 2
    assert "VAORA_SMTP_PORT" in capsys.readouterr().err


def test_issue_api_token(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "api-token"
    assert main(["issue-api-token", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32
