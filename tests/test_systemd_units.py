"""The shipped systemd units (``systemd/*.service``): each scores 2.0 or better in
``systemd-analyze security --offline=yes``, runs as the ``vaora`` user with the basic protections, names
subcommands the programs accept, and the long-running workers are ``Type=notify`` with a watchdog. The purge is a
one-shot service its timer (``systemd/*.timer``) starts daily."""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from central.cli import _parser as central_parser
from gate.cli import build_parser as gate_parser

REPO = Path(__file__).resolve().parents[1]
UNITS = sorted((REPO / "systemd").glob("*.service"))
IDS = [unit.name for unit in UNITS]
MAX_EXPOSURE = 2.0
SCORE = re.compile(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?)")
# The subcommand each unit's ExecStart runs.
EXEC_START = {
    "vaora-central.service": ("vaora-central", ["serve"]),
    "vaora-central-ingest@.service": ("vaora-central", ["ingest"]),
    "vaora-central-deliver@.service": ("vaora-central", ["deliver"]),
    "vaora-gate.service": ("vaora-gate", ["--config", "/etc/vaora/gate.toml"]),
    "vaora-central-purge.service": ("vaora-central", ["purge"]),
}
TIMERS = {"vaora-central-purge.timer": "vaora-central-purge.service"}
"""Each timer and the one-shot service it starts (that service has no [Install]: the timer is what is enabled)."""
WORKERS = {"vaora-central-ingest@.service": 30, "vaora-central-deliver@.service": 60}

Directives = dict[str, dict[str, list[str]]]


def parse_unit(unit: Path) -> Directives:
    """Every ``Key=value`` of a unit file by section, values in file order: a key may repeat (``DeviceAllow=``,
    ``SystemCallFilter=``), which ``configparser`` would refuse. Comments and blank lines are skipped and a
    trailing backslash continues a value on the next line, as systemd reads it."""
    sections: Directives = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in unit.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{unit.name}: {line!r} is outside any section"
        assert "=" in line, f"{unit.name}: {line!r} is not Key=value"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(unit: Path) -> dict[str, list[str]]:
    """The ``[Service]`` section of ``unit``."""
    return parse_unit(unit).get("Service", {})


def parse_command(program: str, args: list[str]) -> argparse.Namespace:
    """``args`` parsed by ``program``'s own argument parser; a refusal fails the test with the command."""
    parser = central_parser() if program == "vaora-central" else gate_parser()
    try:
        return parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"{program} refuses the arguments {args!r}")


def test_the_parser_keeps_repeated_keys_and_sections(tmp_path: Path) -> None:
    unit = tmp_path / "x.service"
    unit.write_text("# c\n[Unit]\nDescription=x\n[Service]\nDeviceAllow=a r\nDeviceAllow=b rw\nExecStart=/bin/a \\\n"
                    "  --flag\nCapabilityBoundingSet=\n", encoding="utf-8")
    found = parse_unit(unit)
    assert found["Unit"] == {"Description": ["x"]}
    assert found["Service"] == {"DeviceAllow": ["a r", "b rw"], "ExecStart": ["/bin/a --flag"],
                                "CapabilityBoundingSet": [""]}


def test_the_units_are_there() -> None:
    assert set(IDS) == set(EXEC_START)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_each_unit_is_hardened_to_an_exposure_of_at_most_2(unit: Path, tmp_path: Path) -> None:
    target = unit
    if unit.name.endswith("@.service"):  # a template is scored as one of its instances
        target = tmp_path / unit.name.replace("@.service", "@1.service")
        shutil.copy(unit, target)
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(target)],
                          capture_output=True, text=True, check=False, timeout=60)
    match = SCORE.search(done.stdout)
    assert match, f"no exposure level printed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    assert match.group(1) == target.name
    score = float(match.group(2))
    assert score <= MAX_EXPOSURE, f"{unit.name} scores {score} (more than {MAX_EXPOSURE}):\n{done.stdout}"


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_each_unit_runs_as_vaora_with_the_basic_protections(unit: Path) -> None:
    found = service(unit)
    assert found.get("User") == ["vaora"]
    assert found.get("Group") == ["vaora"]
    assert found.get("NoNewPrivileges") == ["yes"]
    assert found.get("ProtectSystem") == ["strict"]
    assert found.get("CapabilityBoundingSet") == [""]
    assert found.get("AmbientCapabilities") == [""]
    if unit.name in TIMERS.values():
        assert found.get("Type") == ["oneshot"]
        assert "Install" not in parse_unit(unit)
    else:
        assert parse_unit(unit).get("Install", {}).get("WantedBy") == ["multi-user.target"]


def test_the_timers_start_their_one_shot_services_daily() -> None:
    assert {path.name for path in (REPO / "systemd").glob("*.timer")} == set(TIMERS)
    for timer, target in TIMERS.items():
        found = parse_unit(REPO / "systemd" / timer)
        assert found["Timer"]["Unit"] == [target]
        assert found["Timer"]["OnCalendar"] == ["*-*-* 02:30:00"]
        assert found["Timer"]["Persistent"] == ["yes"]
        assert found["Install"]["WantedBy"] == ["timers.target"]
        assert (REPO / "systemd" / target).exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_timers_calendar_is_one_systemd_reads() -> None:
    for timer in TIMERS:
        [spec] = parse_unit(REPO / "systemd" / timer)["Timer"]["OnCalendar"]
        done = subprocess.run(["systemd-analyze", "calendar", spec], capture_output=True, text=True, check=False,
                              timeout=30)
        assert done.returncode == 0 and "Next elapse" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_the_workers_notify_systemd_and_have_a_watchdog(name: str) -> None:
    found = service(REPO / "systemd" / name)
    assert found.get("Type") == ["notify"]
    assert found.get("NotifyAccess") == ["main"]
    assert found.get("WatchdogSec") == [str(WORKERS[name])]
    assert found.get("Restart") == ["always"]


def test_the_gate_notifies_systemd_and_keeps_its_device_groups() -> None:
    found = service(REPO / "systemd" / "vaora-gate.service")
    assert found.get("Type") == ["notify"]
    assert float(found["WatchdogSec"][0]) > 0
    assert set(found["SupplementaryGroups"][0].split()) >= {"gpio", "dialout", "input", "video"}
    assert found.get("DevicePolicy") == ["closed"]
    assert "PrivateDevices" not in found


def test_the_web_unit_migrates_before_it_serves() -> None:
    found = service(REPO / "systemd" / "vaora-central.service")
    assert [shlex.split(command) for command in found["ExecStartPre"]] == [
        ["/opt/vaora/.venv/bin/vaora-central", "migrate"]]
    assert [shlex.split(command) for command in found["ExecStart"]] == [
        ["/opt/vaora/.venv/bin/vaora-central", "serve"]]
    assert found.get("EnvironmentFile") == ["/etc/vaora/central.env"]
    assert found.get("KillSignal") == ["SIGTERM"]
    assert found.get("TimeoutStopSec") == ["10"]


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_each_exec_start_runs_its_subcommand(unit: Path) -> None:
    program, args = EXEC_START[unit.name]
    [command] = service(unit)["ExecStart"]
    path, *given = shlex.split(command)
    assert path == f"/opt/vaora/.venv/bin/{program}"
    assert given == args


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_every_command_a_unit_runs_is_one_the_program_accepts(unit: Path) -> None:
    found = service(unit)
    for command in found.get("ExecStartPre", []) + found["ExecStart"]:
        path, *args = shlex.split(command)
        program = Path(path).name
        assert program in {"vaora-central", "vaora-gate"}, command
        parsed = parse_command(program, args)
        if program == "vaora-central":
            assert parsed.command in {"serve", "ingest", "deliver", "migrate", "purge"}, command
            assert not getattr(parsed, "dry_run", False), command
        elif parsed.command == "check-config":
            assert parsed.file == "/etc/vaora/gate.toml"
        else:
            assert parsed.command is None and parsed.config == "/etc/vaora/gate.toml", command
