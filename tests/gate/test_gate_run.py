"""``Gate.run()`` as a service: SIGTERM in a real process leaves the relay at the fail mode's safe level, and the
systemd notifications (READY, WATCHDOG fed only while scan handling is healthy, STOPPING) over a real socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from gate import cli
from gate.app import Gate
from gate.config import GateConfig
from gate.decision import Decision, decide
from gate.scanners import ScanEvent
from protocols import systemd as sd
from protocols.reasons import Reason
from tests.conftest import scaled, wait_until
from tests.gate.gate_helpers import FakeTransport, IdleScanner
from tests.notify import NotifySocket

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, threading, time
from pathlib import Path
from gpiozero.pins.mock import MockFactory
from gate.app import Gate
from gate.config import parse_config
from tests.gate.gate_helpers import FakeTransport, IdleScanner, config_dict

tmp, mode, active_high = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
config = parse_config(config_dict(tmp, gate={"fail_mode": mode},
                                  pins={"relay_active_high": active_high},
                                  turnstile={"unlock_seconds": 20}))
factory = MockFactory()
gate = Gate(config, pin_factory=factory, scanner=IdleScanner(), transport=FakeTransport(), flush_timeout=0.1)
relay = factory.pin(17)

def open_then_report():
    while gate.scanner.on_scan is None:
        time.sleep(0.01)
    gate.manual_open()  # a 20 s unlock is running when SIGTERM arrives
    print("unlocked", int(relay.state), flush=True)

threading.Thread(target=open_then_report, daemon=True).start()
gate.run()
print(json.dumps({"state": int(relay.state), "levels": [int(s.state) for s in relay.states]}), flush=True)
"""


@pytest.mark.parametrize(("mode", "active_high", "rest", "unlocked", "after_stop"), [
    ("secure", True, 0, 1, 0),   # de-energised = LOW = locked
    ("safe", True, 1, 0, 0),     # de-energised = LOW = released
    ("secure", False, 1, 0, 1),  # active-low board: de-energised = HIGH = locked
    ("safe", False, 0, 1, 1),    # active-low board: de-energised = HIGH = released
])
def test_sigterm_leaves_the_relay_de_energised(tmp_path: Path, mode: str, active_high: bool, rest: int,
                                               unlocked: int, after_stop: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path), mode, "1" if active_high else "0"], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().split()
        assert first == ["unlocked", str(unlocked)], process.stderr.read() if process.stderr else ""
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["state"] == after_stop
    # the MockPin's initial LOW, the rest level, the unlock, de-energised on stop (equal neighbours merge)
    def merged(levels: list[int]) -> list[int]:
        return [lvl for i, lvl in enumerate(levels) if i == 0 or lvl != levels[i - 1]]

    assert merged(result["levels"]) == merged([0, rest, unlocked, after_stop])
    assert "Traceback" not in err


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    path = tmp_path / "notify.sock"
    listener = NotifySocket(path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield listener
    listener.close()


def index_of_stalled(texts: list[str]) -> int:
    """Where the first STATUS line reporting the stalled scan handler is in the notify messages."""
    return next(i for i, text in enumerate(texts) if "SCAN HANDLER STALLED" in text)


def index_of_recovery(texts: list[str]) -> int | None:
    """Where the first STATUS line after the stall no longer reports it (None before it came)."""
    stalled = index_of_stalled(texts)
    return next((i for i in range(stalled + 1, len(texts))
                 if texts[i].startswith("STATUS=") and "STALLED" not in texts[i]), None)


def test_watchdog_is_fed_while_healthy_and_stops_when_the_handler_stalls(
    notify_socket: NotifySocket, make_config: Callable[..., GateConfig],
) -> None:
    release = threading.Event()

    def blocking_decide(text: str, *args: object) -> Decision:
        if text == "STALL":
            release.wait(30)  # a handler stuck on a dead device or lock
            return Decision(False, Reason.INTERNAL_ERROR)
        return decide(text, *args)  # type: ignore[arg-type]

    scanner = IdleScanner()
    gate = Gate(make_config(), pin_factory=MockFactory(), scanner=scanner, transport=FakeTransport(),
                decider=blocking_decide, stall_after_s=0.5, flush_timeout=0.1)
    ticks = [0]
    housekeeping = gate.housekeeping

    def counted_housekeeping() -> None:  # one call per turn of the service loop: the test's clock
        ticks[0] += 1
        housekeeping()

    gate.housekeeping = counted_housekeeping  # type: ignore[method-assign]
    stop = threading.Event()
    runner = threading.Thread(target=gate.run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_until(lambda: "READY=1" in notify_socket.texts())
        assert any(t.startswith("STATUS=gate g1: turnstile locked") for t in notify_socket.texts())
        wait_until(lambda: len(notify_socket.pings()) >= 3)

        # A scan whose handling never finishes, delivered from a scanner thread.
        threading.Thread(target=scanner.on_scan, args=(ScanEvent("STALL", Reason.OK, "test", time.monotonic()),),
                         daemon=True).start()
        wait_until(lambda: any("SCAN HANDLER STALLED" in t for t in notify_socket.texts()))
        stalled_at_tick = ticks[0]
        wait_until(lambda: ticks[0] >= stalled_at_tick + 3)  # the loop came round three more times, stalled

        release.set()  # the handler finishes: feeding resumes
        recovered = wait_until(lambda: index_of_recovery(notify_socket.texts()))
        texts = notify_socket.texts()
        stalled = index_of_stalled(texts)
        assert texts[stalled + 1:recovered] in ([], ["WATCHDOG=1"]), \
            "the watchdog is not fed while the scan handler is stalled (only as it recovers)"
        wait_until(lambda: "WATCHDOG=1" in notify_socket.texts()[recovered:])
    finally:
        release.set()
        stop.set()
        runner.join(scaled(10))
    assert not runner.is_alive()
    assert notify_socket.texts()[-1] == "STOPPING=1"


def test_notify_without_socket_is_a_no_op_and_abstract_names_work() -> None:
    assert sd.notify("READY=1", {}) is False
    assert sd.watchdog_interval({}) is None
    assert sd.watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert sd.watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    name = f"vaora-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert sd.notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"


def test_cli_stops_with_a_clear_message_when_a_pin_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    factory = MockFactory()
    squatter = LED(17, pin_factory=factory)
    monkeypatch.setattr("gate.app.default_pin_factory", lambda simulate: factory)
    path = tmp_path / "gate.toml"
    path.write_text('[gate]\nid = "g1"\nsite = "hq"\nsimulate = true\n'
                    f'data_dir = "{tmp_path / "data"}"\n[central]\nurl = "http://127.0.0.1:9"\n'
                    '[status]\nenabled = false\n', encoding="utf-8")
    assert cli.main(["--config", str(path)]) == cli.EXIT_HARDWARE
    err = capsys.readouterr().err
    assert "pins.relay: GPIO17 is already in use" in err
    assert "Traceback" not in err
    squatter.close()


def test_service_unit_is_a_hardened_notify_service() -> None:
    unit = (REPO / "systemd" / "vaora-gate.service").read_text(encoding="utf-8")
    settings = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in unit.splitlines()
                if "=" in line and not line.startswith("#")}
    expected = {"Type": "notify", "WatchdogSec": "10", "NotifyAccess": "main", "Restart": "on-failure",
                "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes", "LockPersonality": "yes",
                # AF_NETLINK: libcamera enumerates cameras through udev's netlink socket.
                "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK", "StateDirectory": "vaora-gate",
                "SupplementaryGroups": "gpio dialout input video"}
    assert {key: settings.get(key) for key in expected} == expected
    assert "MemoryDenyWriteExecute" not in settings, "breaks some numpy/OpenCV builds (see the comment)"
    assert settings["ExecStartPre"].endswith("vaora-gate check-config /etc/vaora/gate.toml")
