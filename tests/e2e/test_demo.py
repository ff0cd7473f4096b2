"""`make demo`'s main job, run as a user would: codes typed on the gate's terminal, then Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import scaled

REPO = Path(__file__).resolve().parents[2]


class Terminal:
    """The demo's terminal: lines it printed, read in the background, and a keyboard to type on."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60.0, after: int = 0) -> re.Match:
        """Wait for a printed line (from index ``after`` on) that matches ``pattern`` and return its match;
        ``timeout`` is scaled. (Not ``wait_until``: this one sleeps on the reader's condition, not a poll.)"""
        regex = re.compile(pattern)
        deadline = time.monotonic() + scaled(timeout)
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    if match := regex.search(line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no line matching {pattern!r}; got:\n" + "\n".join(self.lines))
                self._changed.wait(min(remaining, 0.5))

    def type(self, text: str) -> int:
        """Type a line; return how many lines had been printed before it."""
        count = len(self.lines)
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        return count


def launch(data_dir: Path) -> tuple[subprocess.Popen, Terminal]:
    """Start ``python -m devtools.demo`` as ``make demo`` does, with its terminal."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.demo", "--data-dir", str(data_dir)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    return process, Terminal(process)


def test_demo_admits_its_codes_and_stops_cleanly_on_ctrl_c(tmp_path):
    process, terminal = launch(tmp_path / "demo")
    try:
        mqtt_port = int(terminal.wait_for(r"Mosquitto\s+mqtt://127\.0\.0\.1:(\d+)").group(1))
        assert mqtt_port != 1883, "the demo must not assume the machine's broker port is free"
        terminal.wait_for(r"Ctrl-C")
        central = terminal.wait_for(r"Central API\s+(http://127\.0\.0\.1:\d+)/").group(1)
        served_by = requests.get(f"{central}/healthz", timeout=scaled(10)).headers.get("Server", "")
        assert "gunicorn" in served_by, f"the demo's central must be the production server, not {served_by!r}"
        compact = terminal.wait_for(r"^\s+([2-9A-Z]{14})\s+\(printed").group(1)
        signed = terminal.wait_for(r"^\s+(92\d{147}|VR1:[A-Z2-7]+)$").group(1)
        unknown = terminal.wait_for(r"\(refused\):\s+([2-9A-Z]{14})").group(1)

        guard_page = terminal.wait_for(r"guard page\)\s+(http://127\.0\.0\.1:\d+/)").group(1)
        before = terminal.type(compact)
        terminal.wait_for(r"MỞ CỬA / OPEN.*Nguyễn Thị Hoà", after=before, timeout=20)
        status = requests.get(f"{guard_page}api/status", timeout=scaled(10)).json()
        assert status["last"]["name"] == "Nguyễn Thị Hoà" and status["last"]["allowed"] is True
        terminal.wait_for(r"central acknowledged", after=before, timeout=20)
        before = terminal.type(signed)
        terminal.wait_for(r"MỞ CỬA / OPEN.*Trần Văn Đức", after=before, timeout=20)
        before = terminal.type(unknown)
        terminal.wait_for(r"TỪ CHỐI / REFUSED.*Mã không có trong danh sách", after=before, timeout=20)

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=scaled(30)) == 0
        terminal.wait_for(r"Đã dừng / stopped")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{central}/healthz", timeout=scaled(5))  # the web server stopped with the demo
        assert "Traceback" not in "\n".join(terminal.lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout
    assert leftover.strip() == "", "Ctrl-C left a process of the demo running"
