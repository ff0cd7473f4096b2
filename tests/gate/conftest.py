"""Fixtures for gate tests (helpers live in gate_helpers.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.config import GateConfig, parse_config
from tests.gate.gate_helpers import World, build_world, config_dict


@pytest.fixture
def world() -> World:
    """A small world (3 regular delegates plus the special cases)."""
    return build_world()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., GateConfig]:
    """``make_config(gate={...}, mqtt={...}, ...) -> GateConfig`` with test defaults (simulated pins)."""

    def make(**sections: dict[str, Any]) -> GateConfig:
        return parse_config(config_dict(tmp_path, **sections))

    return make


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """``gate.cli.main`` configures logging to the (captured) stdout; put the root logger back afterwards so
    threads of later tests do not log into a closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
