"""The README's "Installing a gate" route, run as written (issue 13, point 2).

The commands are the README's own: every block after a ``<!-- gate-install: NAME -->`` marker is read from
README.md and run in order, so the README and this test cannot drift. The run is container-free on Debian:

- the apt block is checked, not run: each package exists in Debian's archive, except the ones that exist only
  in Raspberry Pi OS's archive (``PI_OS_ONLY``);
- ``/etc/vaora``, ``/opt/vaora``, ``/var/lib/vaora-gate`` and ``/etc/systemd/system`` live under a temporary
  root; ``useradd``/``usermod`` get ``--prefix <root>`` and the ``vaora`` group is given by number to
  ``install -g``/``chgrp`` (it exists only in the temporary root's /etc/group);
- ``sudo`` is a shim: root already, and ``sudo -u vaora`` runs as the temporary root's vaora (uid, gid, groups)
  through ``setpriv``, so the files' modes and groups are really checked; ``sudoedit`` writes the bench
  configuration (the README's keys with simulated pins, a pseudo-terminal scanner, no reachable central or
  broker); ``systemctl`` records its arguments (systemd is not PID 1 here);
- ``python3`` is Debian's /usr/bin/python3, as on Pi OS.

Then the service is started as systemd would (the installed unit's ``ExecStartPre`` and ``ExecStart`` as the
vaora user, its ``StateDirectory``), a code is typed into the pseudo-terminal, and the README's first-scan
command reads it back from the status page.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import scaled, wait_until
from tests.packaging_helpers import PIP_TIMEOUT, REPO, copy_checkout

pytestmark = [pytest.mark.slow, pytest.mark.timeout(scaled(900))]

README = REPO / "README.md"
MARKER = re.compile(r"<!-- gate-install: (?P<name>[\w.-]+) -->\s*\n(?P<indent>[ ]*)```(?P<lang>\w+)\n(?P<body>.*?)\n"
                    r"[ ]*```", re.S)
STEPS = ["apt", "user", "code", "config", "gate.toml", "token", "key", "sign", "certificate", "service", "first-scan"]
PI_OS_ONLY = {"python3-picamera2", "python3-lgpio"}
PI_OS_GROUPS = {"gpio", "input", "dialout", "video"}
ROOTED = ("/etc/vaora", "/opt/vaora", "/var/lib/vaora-gate", "/etc/systemd/system")
TOKEN = "gate-token-for-the-install-test"
CODE = "VAORA-FIRST-SCAN"

SUDO = """#!/bin/sh
# The test's sudo: already root. "sudo -u USER CMD": CMD as USER of the temporary root, with its groups.
if [ "$1" = "-u" ]; then
    user=$2; shift 2
    uid=$(awk -F: -v u="$user" '$1 == u {print $3}' "$VAORA_TEST_ROOT/etc/passwd")
    gid=$(awk -F: -v u="$user" '$1 == u {print $4}' "$VAORA_TEST_ROOT/etc/passwd")
    groups=$(awk -F: -v u="$user" -v g="$gid" '$4 ~ ("(^|,)" u "(,|$)") {printf "%s,", $3} END {print g}' \\
        "$VAORA_TEST_ROOT/etc/group")
    exec setpriv --reuid="$uid" --regid="$gid" --groups="$groups" -- "$@"
fi
exec "$@"
"""
SUDOEDIT = """#!/bin/sh
# The test's sudoedit: the edit is the bench configuration.
cat "$VAORA_TEST_GATE_TOML" > "$1"
"""
SYSTEMCTL = """#!/bin/sh
# The test's systemctl: systemd is not PID 1 in the test, so it records what it was asked.
echo "$*" >> "$VAORA_TEST_ROOT/systemctl.log"
"""


def readme_blocks() -> dict[str, tuple[str, str]]:
    """{marker name: (language, code)} of the README's "Installing a gate" blocks."""
    blocks = {}
    for match in MARKER.finditer(README.read_text(encoding="utf-8")):
        body = textwrap.dedent(match["body"])
        blocks[match["name"]] = (match["lang"], body)
    return blocks


def free_port() -> int:
    """A TCP port nothing listens on (just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def toml_text(config: dict[str, dict[str, Any]]) -> str:
    """TOML for a configuration of sections holding scalars (what a gate's file holds)."""
    lines = []
    for section, keys in config.items():
        lines.append(f"[{section}]")
        for key, value in keys.items():
            lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
        lines.append("")
    return "\n".join(lines)


def merged(*configs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Configurations merged section by section, the later ones winning."""
    result: dict[str, dict[str, Any]] = {}
    for config in configs:
        for section, keys in config.items():
            result.setdefault(section, {}).update(keys)
    return result


class Install:
    """The temporary root, the shims and the environment the README's commands run in."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root = root
        self.work = work  # the operator's current directory (gate.csr, ca.crt, gate.crt)
        self.shims = root / "shims"
        self.shims.mkdir()
        for name, text in (("sudo", SUDO), ("sudoedit", SUDOEDIT), ("systemctl", SYSTEMCTL)):
            (self.shims / name).write_text(text)
            (self.shims / name).chmod(0o755)
        self.gate_toml = root / "bench-gate.toml"
        self.status_port = free_port()
        self.env = {"PATH": f"{self.shims}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(work), "LANG": "C.UTF-8",
                    "VAORA_TEST_ROOT": str(root), "VAORA_TEST_GATE_TOML": str(self.gate_toml),
                    "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                    "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))}
        self.env.update({key: value for key, value in os.environ.items()
                         if key.startswith("PIP_") or key.lower().endswith("_proxy") or key == "SSL_CERT_FILE"})

    def ids(self, user: str) -> tuple[int, int]:
        """(uid, gid) of ``user`` in the temporary root."""
        for line in (self.root / "etc" / "passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return int(fields[2]), int(fields[3])
        raise AssertionError(f"no user {user} in {self.root}/etc/passwd")

    def groups_of(self, user: str) -> set[str]:
        """Supplementary groups of ``user`` in the temporary root."""
        return {line.split(":")[0] for line in (self.root / "etc" / "group").read_text().splitlines()
                if user in line.split(":")[3].split(",")}

    def rooted(self, path: str) -> Path:
        """An absolute path of the Pi, inside the temporary root."""
        return self.root / path.lstrip("/")

    def localize(self, command: str) -> str:
        """The README command with the temporary root's paths, users and ports (each rewrite is listed here)."""
        for prefix in ROOTED:
            command = re.sub(rf"(?<![\w/]){re.escape(prefix)}(?=[/\s'\"]|$)", str(self.rooted(prefix)), command,
                             flags=re.M)
        command = re.sub(r"\b(useradd|usermod|groupadd)\b", rf"\1 --prefix {self.root}", command)
        if any(line.startswith("vaora:") for line in (self.root / "etc" / "passwd").read_text().splitlines()):
            _, gid = self.ids("vaora")
            command = re.sub(r"(-g|chgrp)\s+vaora\b", rf"\1 {gid}", command)
        return command.replace("127.0.0.1:8080", f"127.0.0.1:{self.status_port}")

    def run(self, block: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run a README block with bash -e in the operator's directory; fails the test on a non-zero exit."""
        script = self.localize(block)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.work, env=self.env, text=True,
                              input=stdin, capture_output=True, timeout=PIP_TIMEOUT, check=False)
        assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        return done


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Install]:
    """A temporary root with Debian's user database (plus Pi OS's gpio group), traversable by the vaora user."""
    root = Path(tempfile.mkdtemp(prefix="vaora-root-", dir="/tmp"))
    try:
        root.chmod(0o755)
        (root / "etc").mkdir()
        for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
            if Path("/etc", name).exists():
                shutil.copy2(Path("/etc", name), root / "etc" / name)
        for folder in ("etc/systemd/system", "opt", "var/lib"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        present = {line.split(":")[0] for line in (root / "etc" / "group").read_text().splitlines()}
        for group in sorted(PI_OS_GROUPS - present):  # Pi OS has them all; a Debian container may lack some
            subprocess.run(["groupadd", "--prefix", str(root), "--system", group], check=True)
        work = root / "home"
        work.mkdir()
        yield Install(root, work)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_readme_marks_every_step() -> None:
    """Every step of the route is a marked block, in the README's order."""
    assert list(readme_blocks()) == STEPS


def _apt_candidates(packages: set[str]) -> set[str]:
    """The packages among ``packages`` that apt can install here (a candidate version in its lists)."""
    out = subprocess.run(["apt-cache", "policy", *sorted(packages)], capture_output=True, text=True, check=False,
                         timeout=60).stdout
    found = set(re.findall(r"^(\S+):\n\s+Installed: .*\n\s+Candidate: (?!\(none\))", out, flags=re.M))
    return found & packages


def test_the_apt_packages_exist_in_debian_or_only_in_pi_os() -> None:
    """Each apt package of the README is a Debian package, except those that exist only in Pi OS's archive."""
    _, apt = readme_blocks()["apt"]
    packages = {word for line in apt.splitlines() if "apt-get install" in line
                for word in line.split("#")[0].split("install", 1)[1].split() if not word.startswith("-")}
    assert packages >= PI_OS_ONLY
    debian = packages - PI_OS_ONLY
    if _apt_candidates(debian) != debian:  # lists never fetched, or stale
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False, timeout=300)
    assert _apt_candidates(debian) == debian
    assert _apt_candidates(PI_OS_ONLY) == set()


def _bench_config(install: Install, scanner_device: str) -> str:
    """The README's keys on the wiring example, with the bench's simulated pins, scanner and closed ports."""
    _, snippet = readme_blocks()["gate.toml"]
    readme_keys = tomllib.loads(install.localize(snippet))
    example = tomllib.loads((REPO / "firmware_config" / "plain-gpio.toml").read_text(encoding="utf-8"))
    bench = {
        "gate": {"simulate": True, "data_dir": str(install.rooted("/var/lib/vaora-gate"))},
        "central": {"url": f"http://127.0.0.1:{free_port()}"},
        "mqtt": {"host": "127.0.0.1", "port": free_port()},
        "scanner": {"type": "serial", "device": scanner_device, "terminator": "cr"},
        "status": {"enabled": True, "listen": "127.0.0.1", "port": install.status_port},
    }
    return toml_text(merged(example, readme_keys, bench))


def _unit(install: Install) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(install.rooted("/etc/systemd/system/vaora-gate.service"))
    return unit


def test_the_readme_route_installs_a_gate_that_reads_a_first_scan(install: Install) -> None:
    """README "Installing a gate", step by step, ends with a running vaora-gate that decided a first scan."""
    blocks = readme_blocks()
    copy_checkout(install.rooted("/opt/vaora/src"))  # "copy the project to /opt/vaora/src"

    install.run(blocks["user"][1])
    uid, gid = install.ids("vaora")
    assert install.groups_of("vaora") >= PI_OS_GROUPS

    install.run(blocks["code"][1])
    venv = install.rooted("/opt/vaora/.venv")
    assert (venv / "pyvenv.cfg").read_text().count("include-system-site-packages = true") == 1
    assert (venv / "bin" / "vaora-gate").exists()

    master, slave = os.openpty()
    scanner_device = os.ttyname(slave)
    os.chown(scanner_device, uid, gid)  # on the Pi: /dev/ttyACM0, group dialout
    install.gate_toml.write_text(_bench_config(install, scanner_device), encoding="utf-8")
    install.run(blocks["config"][1])
    gate_toml = install.rooted("/etc/vaora/gate.toml")
    assert gate_toml.stat().st_gid == gid and gate_toml.stat().st_mode & 0o777 == 0o640

    install.run(blocks["token"][1], stdin=TOKEN + "\n")
    token_file = install.rooted("/etc/vaora/gate.token")
    assert token_file.read_text().strip() == TOKEN and token_file.stat().st_mode & 0o777 == 0o640

    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc",
                    "-subj", "/CN=vaora test site CA", "-days", "2", "-keyout", "ca.key", "-out", "ca.crt"],
                   cwd=install.work, check=True, capture_output=True)
    install.run(blocks["key"][1])
    install.run(blocks["sign"][1])
    install.run(blocks["certificate"][1])
    key = install.rooted("/etc/vaora/tls/gate.key")
    assert key.stat().st_gid == gid and key.stat().st_mode & 0o777 == 0o640
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in",
                              str(install.rooted("/etc/vaora/tls/gate.crt"))], capture_output=True, text=True,
                             check=True).stdout
    assert "CN = gate-hq-main-in-1" in subject

    done = install.run(blocks["service"][1])
    assert "OK: gate hq-main-in-1 at site hq-main" in done.stdout  # check-config, as the vaora user
    assert (install.root / "systemctl.log").read_text().splitlines() == ["daemon-reload", "enable --now vaora-gate"]

    unit = _unit(install)
    service = unit["Service"]
    assert service["User"] == "vaora" and service["StateDirectory"] == "vaora-gate"
    assert set(service["SupplementaryGroups"].split()) == install.groups_of("vaora") - {"vaora"}
    start_pre = shlex.split(install.localize(service["ExecStartPre"]))
    start = shlex.split(install.localize(service["ExecStart"]))
    assert Path(start[0]) == venv / "bin" / "vaora-gate" and Path(start[-1]) == gate_toml
    if shutil.which("systemd-analyze") and Path("/usr/lib/systemd/system").is_dir():
        # verify resolves the unit's commands and dependencies inside the root: the system's units come along.
        shutil.copytree("/usr/lib/systemd/system", install.rooted("/usr/lib/systemd/system"), symlinks=False,
                        ignore_dangling_symlinks=True)
        verified = subprocess.run(["systemd-analyze", "verify", f"--root={install.root}",
                                   "/etc/systemd/system/vaora-gate.service"], capture_output=True, text=True,
                                  check=False, timeout=60)
        assert verified.returncode == 0, verified.stderr

    # As systemd would: StateDirectory, then ExecStartPre and ExecStart as the vaora user.
    state = install.rooted("/var/lib/vaora-gate")
    state.mkdir(mode=0o750, exist_ok=True)
    os.chown(state, uid, gid)
    as_vaora = ["sudo", "-u", "vaora"]
    env = {**install.env, "PYTHONUNBUFFERED": "1"}
    subprocess.run(as_vaora + start_pre, env=env, check=True, capture_output=True, timeout=120)
    log_path = install.work / "gate.log"
    with log_path.open("w") as log:
        gate = subprocess.Popen(as_vaora + start, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        first_scan = blocks["first-scan"][1]

        def status() -> dict[str, Any] | None:
            done = subprocess.run(["bash", "-c", install.localize(first_scan)], env=install.env, cwd=install.work,
                                  capture_output=True, text=True, check=False, timeout=30)
            if done.returncode != 0 or not done.stdout.strip():
                return None
            answer: dict[str, Any] = json.loads(done.stdout)
            return answer

        wait_until(lambda: gate.poll() is not None or status() is not None, timeout=scaled(60))
        assert gate.poll() is None, log_path.read_text()
        # The status page can answer before the scanner thread opened the device, and opening it (pyserial) drops
        # whatever was typed before: type the code once the gate says the scanner is open.
        wait_until(lambda: f"scanner device={scanner_device} opened" in log_path.read_text(), timeout=scaled(30),
                   message=lambda: log_path.read_text()[-2000:])
        os.write(master, f"{CODE}\r".encode())
        wait_until(lambda: (status() or {}).get("recent"), timeout=scaled(30))
        answer = status()
        assert answer is not None
        (scan,) = answer["recent"]
        assert scan["allowed"] is False and scan["reason"], scan  # no snapshot loaded yet: refused with a reason
        wait_until(lambda: "scan decided" in log_path.read_text(), timeout=scaled(10))
        assert f"reason={scan['reason']}" in log_path.read_text()
    finally:
        if gate.poll() is None:
            os.killpg(gate.pid, signal.SIGTERM)
            try:
                gate.wait(timeout=scaled(20))
            except subprocess.TimeoutExpired:
                os.killpg(gate.pid, signal.SIGKILL)
                gate.wait()
        os.close(master)
        os.close(slave)
