"""The one setting that stretches every wait of the test suite, the demo's tools and the load run.

``VAORA_TEST_TIMEOUT_SCALE`` (default 1) multiplies every timeout: condition waits in the tests, process
start-up waits (Mosquitto, the mail catcher, central, gates). A timeout is only a ceiling for a broken run, so a
loaded machine gets more time and a passing run is no slower. ``tests/conftest.py`` and ``devtools`` both read it
here: the variable's name is spelled in this module only.
"""

from __future__ import annotations

import os

TIMEOUT_SCALE_ENV = "VAORA_TEST_TIMEOUT_SCALE"
"""The environment variable holding the scale factor."""

MIN_SCALE = 0.1
"""A scale below this is raised to it: a zero or negative factor would turn every wait into an instant failure."""


def timeout_scale() -> float:
    """The factor from ``VAORA_TEST_TIMEOUT_SCALE``, read now (1 when unset, empty or not a number)."""
    raw = os.environ.get(TIMEOUT_SCALE_ENV, "").strip()
    try:
        value = float(raw) if raw else 1.0
    except ValueError:
        value = 1.0
    return max(value, MIN_SCALE)


def scaled(seconds: float) -> float:
    """Return ``seconds`` stretched by ``VAORA_TEST_TIMEOUT_SCALE``."""
    return seconds * timeout_scale()
