"""The import rules of the tree (README, "Where things are"), read from the source with ``ast``.

- ``protocols`` imports neither ``gate`` nor ``central`` nor ``devtools``;
- ``gate`` imports neither ``central``, ``devtools``, peewee nor Flask;
- ``central.core`` imports no feature of central, nor ``central.messaging`` or ``central.web``;
- ``central.outbound`` (mail, SMS, the job queue, tickets) imports no feature's pages or API;
- a feature of central does not reach into another feature's internals: its pages (``views``), JSON API
  (``api``) or forms (``forms``); it may call another feature's models and services;
- ``central/services/`` and ``central/api/staff.py`` are gone: each feature owns its services and API;
- no runtime package (``protocols``, ``gate``, ``central``) imports ``devtools`` or ``tests``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imports_of(package: str) -> list[tuple[str, int, str]]:
    """Every module name imported by the ``.py`` files under ``package`` (a path relative to the repository):
    ``(file, line, module)``; relative imports are resolved against the file's package."""
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        relative = path.relative_to(REPO)
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                found += [(str(relative), node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    is_package = path.name == "__init__.py"
                    base = parts[: len(parts) - node.level + (1 if is_package else 0)]
                    module = ".".join([*base, node.module] if node.module else base)
                else:
                    module = node.module or ""
                found.append((str(relative), node.lineno, module))
                found += [(str(relative), node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    """``file:line module`` for each import under ``package`` of a module in (or under) ``forbidden``."""
    return [f"{file}:{line} {module}" for file, line, module in imports_of(package)
            if any(module == name or module.startswith(name + ".") for name in forbidden)]


SHARED_WITH_CORE = {"core", "outbound"}
"""Packages core may use: itself, and the outbound side (mail and SMS senders), which the application context
wires up."""

SHARED = {"core", "messaging", "outbound", "web", "api", "migrations"}
"""central's shared packages; every other subpackage is a feature."""

INTERNALS = ("views", "api", "forms")
"""A feature's modules that no other feature imports."""


def features() -> list[str]:
    """The names of central's features (``meetings``, ``desk``, ...)."""
    return sorted(path.name for path in (REPO / "central").iterdir()
                  if (path / "__init__.py").exists() and path.name not in SHARED)


def central_features() -> tuple[str, ...]:
    """central's subpackages that core must not import: every feature, messaging and web."""
    return tuple(f"central.{path.name}" for path in sorted((REPO / "central").iterdir())
                 if (path / "__init__.py").exists() and path.name not in SHARED_WITH_CORE)


@pytest.mark.parametrize(("package", "forbidden"), [
    ("protocols", ("gate", "central", "devtools", "tests")),
    ("gate", ("central", "devtools", "tests", "peewee", "flask", "psycopg")),
    ("central", ("devtools", "tests")),
])
def test_runtime_packages_keep_to_their_imports(package: str, forbidden: tuple[str, ...]) -> None:
    assert offending(package, forbidden) == []


def test_core_imports_no_feature() -> None:
    features = central_features()
    assert "central.meetings" in features and "central.messaging" in features
    assert offending("central/core", features) == []


def test_the_checker_sees_relative_and_absolute_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pkg" / "sub"
    package.mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from . import leaf\n")
    (package / "leaf.py").write_text("import flask\nfrom ..other import thing\n")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    assert offending("pkg", ("flask", "pkg.other", "pkg.sub.leaf")) == [
        "pkg/sub/__init__.py:1 pkg.sub.leaf", "pkg/sub/leaf.py:1 flask", "pkg/sub/leaf.py:2 pkg.other",
        "pkg/sub/leaf.py:2 pkg.other.thing",
    ]


def test_central_is_one_folder_per_feature() -> None:
    assert features() == ["admin", "attendance", "auth", "clients", "desk", "gates", "health", "invitations",
                          "meetings", "registration", "retention"]
    assert not (REPO / "central/services").exists() and not (REPO / "central/api/staff.py").exists()
    for feature in features():
        assert (REPO / "central" / feature / "views.py").exists() or feature == "auth", feature


@pytest.mark.parametrize("feature", features())
def test_no_feature_imports_another_features_internals(feature: str) -> None:
    others = tuple(f"central.{other}.{part}" for other in features() if other != feature for part in INTERNALS)
    assert offending(f"central/{feature}", others) == []


def test_outbound_imports_no_features_pages() -> None:
    pages = tuple(f"central.{feature}.{part}" for feature in features() for part in INTERNALS)
    assert offending("central/outbound", pages) == []
