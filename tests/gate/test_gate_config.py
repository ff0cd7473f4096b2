"""Per-gate TOML config: defaults, every bad key listed, pins, secrets, the CLI and the example file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gate.cli import main
from gate.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "firmware_config" / "example-gpio.toml"

MINIMAL = """
[gate]
id = "g1"
site = "hq"

[central]
url = "http://central.local:8000"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.errors


def test_minimal_file_gets_operator_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.gate.fail_mode == "safe"
    assert config.gate.direction == "in"
    assert config.gate.simulate is False
    assert config.gate.display_name == "g1"
    assert config.mqtt.port == 1883
    assert config.scanner.type == "serial" and config.scanner.max_length == 256
    assert (config.pins.relay, config.pins.green_led, config.pins.red_led) == (17, 27, 22)
    assert config.turnstile.unlock_seconds == 5.0


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.gate.id == "hq-main-in-1"
    assert config.gate.name == "Cổng chính - vào 1"


@pytest.mark.parametrize("value", ['"seventeen"', "17.5", "true", "28", "-1", '"GPIO40"', '"BOARD1"', "[17]"])
def test_bad_relay_pin_names_the_key(tmp_path: Path, value: str) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + f"\n[pins]\nrelay = {value}\n"))
    assert len(errors) == 1
    assert errors[0].startswith("pins.relay: ")


@pytest.mark.parametrize(("value", "bcm"), [("4", 4), ('"GPIO4"', 4), ('"BCM4"', 4), ('"BOARD7"', 4),
                                            ('"J8:7"', 4), ('"gpio5"', 5)])
def test_pin_names_resolve_to_bcm(tmp_path: Path, value: str, bcm: int) -> None:
    config = load_config(write(tmp_path, MINIMAL + f"\n[pins]\nrelay = {value}\n"))
    assert config.pins.relay == bcm


def test_duplicate_pins_are_an_error_even_under_different_names(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + '\n[pins]\nrelay = "BOARD11"\ngreen_led = 17\n'))
    assert len(errors) == 1 and errors[0].startswith("pins: ") and "GPIO17" in errors[0]


def test_every_bad_key_is_listed_with_unknown_keys(tmp_path: Path) -> None:
    text = """
[gate]
id = "Gate One"
site = "hq"
direction = "sideways"
colour = "blue"

[central]
url = "ftp://nope"

[mqtt]
port = 70000

[scanner]
terminator = "tab"

[turnstile]
unlock_seconds = 0.1

[extra]
x = 1
"""
    errors = errors_of(write(tmp_path, text))
    keys = sorted(e.split(":")[0] for e in errors)
    assert keys == sorted(["gate.id", "gate.direction", "gate.colour", "central.url", "mqtt.port",
                           "scanner.terminator", "turnstile.unlock_seconds", "extra"])
    assert "gate.colour: unknown key" in errors
    assert "extra: unknown key" in errors


def test_missing_required_keys(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, "[gate]\nid = 'g1'\n"))
    assert sorted(errors) == ["central: required key is missing", "gate.site: required key is missing"]


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + "\n[pins]\nrelay = = 3\n"))
    assert len(errors) == 1 and errors[0].startswith("toml: ")
    assert "line 10" in errors[0] and "column" in errors[0]


def test_missing_file(tmp_path: Path) -> None:
    errors = errors_of(tmp_path / "nope.toml")
    assert errors[0].startswith("file: cannot read")


def test_token_from_file_env_or_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAORA_GATE_TOKEN", "from-env")
    assert load_config(write(tmp_path, MINIMAL)).central.resolve_token() == "from-env"
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    config = load_config(write(tmp_path, MINIMAL + f'token_file = "{token_file}"\n'))
    assert config.central.resolve_token() == "from-file"
    monkeypatch.delenv("VAORA_GATE_TOKEN")
    assert load_config(write(tmp_path, MINIMAL)).central.resolve_token() is None


def test_unreadable_token_file_and_two_token_sources(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + f'token_file = "{tmp_path / "missing"}"\n'))
    assert errors == [f"central.token_file: cannot read {tmp_path / 'missing'}"]
    errors = errors_of(write(tmp_path, MINIMAL + f'token = "x"\ntoken_file = "{tmp_path}"\n'))
    assert errors == ["central: set either token or token_file, not both"]


def test_cli_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(write(tmp_path, MINIMAL))]) == 0
    assert capsys.readouterr().out.startswith("OK")


def test_cli_subprocess_bad_config_exits_non_zero_and_lists_every_error(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('site = "hq"', 'site = "hq"\nfail_mode = "maybe"')
                 + '\n[pins]\nrelay = "seventeen"\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "gate.cli", "check-config", str(path)], env=env,
                            capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert any(line.startswith("pins.relay: ") and "seventeen" in line for line in lines)
    assert any(line.startswith("gate.fail_mode: ") for line in lines)
    assert "Traceback" not in result.stderr
