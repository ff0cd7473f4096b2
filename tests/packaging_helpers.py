"""Shared parts of the packaging tests: the project's extras read from pyproject.toml, a copy of the checkout
(what an operator copies to a Pi), its wheel, fresh virtualenvs and their size.

Installing into a fresh venv needs the package index; pip's own cache (``~/.cache/pip``, or ``PIP_CACHE_DIR``)
keeps repeated runs fast, evdev's locally built wheel included.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PROJECT = "vaora"
PIP_TIMEOUT = 600  # seconds for one pip run: a cold cache downloads numpy and builds evdev


def pyproject() -> dict[str, object]:
    """The parsed pyproject.toml."""
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def requirements(*extras: str, base: bool = True) -> list[Requirement]:
    """The requirements of the base install (``base``) plus ``extras``, self-references (``vaora[gate]``)
    followed, each requirement once."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    optional: dict[str, list[str]] = project["optional-dependencies"]
    seen_extras: set[str] = set()
    found: dict[str, Requirement] = {}

    def add(texts: list[str]) -> None:
        for text in texts:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == PROJECT:
                for extra in sorted(requirement.extras):
                    follow(extra)
            else:
                found.setdefault(str(requirement), requirement)

    def follow(extra: str) -> None:
        if extra in seen_extras:
            return
        assert extra in optional, f"pyproject.toml has no extra {extra!r}"
        seen_extras.add(extra)
        add(optional[extra])

    if base:
        add(project["dependencies"])
    for extra in extras:
        follow(extra)
    return list(found.values())


def distribution_names(*extras: str, base: bool = True) -> set[str]:
    """Canonical distribution names of :func:`requirements`."""
    return {canonicalize_name(r.name) for r in requirements(*extras, base=base)}


def copy_checkout(dest: Path) -> Path:
    """Copy the checkout's files (tracked and new, not ignored) to ``dest``: the tree an operator copies to a
    Pi. Building from the copy keeps setuptools' build/ and egg-info out of the worktree."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if not source.is_file():
            continue  # deleted in the worktree but still in the index
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest


def pip_env() -> dict[str, str]:
    """The environment of pip runs: no prompts, no version check, the usual cache."""
    return {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def run_pip(args: list[str], python: str | Path = sys.executable) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pip ARGS``; the completed process (not checked: callers read pip's reasons)."""
    return subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, env=pip_env(),
                          timeout=PIP_TIMEOUT, stdin=subprocess.DEVNULL, check=False)


def build_wheel(source: Path, dest: Path) -> Path:
    """Build the project's wheel from ``source`` into ``dest``; its path."""
    done = run_pip(["wheel", "--no-deps", "--wheel-dir", str(dest), str(source)])
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = dest.glob(f"{PROJECT}-*.whl")
    return wheel


def fresh_venv(path: Path) -> Path:
    """A new virtualenv without pip (the outer pip installs into it, so it holds only what vaora brings);
    the path of its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    return path / "bin" / "python"


def install(python: Path, *requirements_: str) -> None:
    """Install ``requirements_`` into the venv of ``python`` with this interpreter's pip."""
    done = run_pip(["--python", str(python), "install", *requirements_])
    assert done.returncode == 0, done.stdout + done.stderr


def site_packages(python: Path) -> Path:
    """The venv's site-packages folder."""
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


def tree_size(folder: Path) -> int:
    """Bytes of every regular file under ``folder`` (symbolic links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def installed_distributions(python: Path) -> set[str]:
    """Canonical names of the distributions installed in the venv of ``python``."""
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in "
         "m.distributions()))"], check=True, capture_output=True, text=True).stdout
    return {canonicalize_name(line) for line in out.split() if line}

NO_MATCH = re.compile(r"No matching distribution found for (\S+)")
