"""Fixtures for gate tests (helpers live in gate_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
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


