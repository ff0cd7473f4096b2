"""Per-gate configuration: a TOML file validated into pydantic models at start-up.

``load_config(path)`` returns a :class:`GateConfig` or raises :class:`ConfigError` whose ``errors`` lists
every problem as ``"dotted.key: message"`` (unknown keys included), so an operator fixes the file in one pass.
Secrets never live in the repository: the central API token comes from ``central.token_file`` or the
``VAORA_GATE_TOKEN`` environment variable (an inline ``central.token`` is accepted for bench setups), and the
MQTT password from ``mqtt.password_file`` or ``VAORA_MQTT_PASSWORD``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from protocols.codes import MAX_SCAN_LENGTH
from protocols.topics import is_valid_id

TOKEN_ENV = "VAORA_GATE_TOKEN"
MQTT_PASSWORD_ENV = "VAORA_MQTT_PASSWORD"
DEFAULT_DATA_DIR = Path("/var/lib/vaora-gate")

# Physical header pin (BOARDn / J8:n) -> BCM GPIO number, for the Raspberry Pi 40-pin header.
BOARD_TO_BCM: dict[int, int] = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10, 21: 9, 22: 25,
    23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}
_BCM_NAME = re.compile(r"^(?:GPIO|BCM)(\d{1,2})$")
_BOARD_NAME = re.compile(r"^(?:BOARD|J8:)(\d{1,2})$")


class ConfigError(Exception):
    """A configuration file that cannot be used; ``errors`` lists every problem as "dotted.key: message"."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid gate configuration:\n" + "\n".join(f"  {e}" for e in errors))
        self.errors = errors


def pin_to_bcm(value: Any) -> int:
    """Return the BCM number of a pin given as an int (BCM 0..27) or a gpiozero name ("GPIO17", "BOARD11").

    Raises ValueError with an operator-facing message for anything else (floats, booleans, unknown names).
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        kind = type(value).__name__
        raise ValueError(f'must be a BCM number 0..27 or a pin name like "GPIO17", not {kind}')
    if isinstance(value, int):
        if 0 <= value <= 27:
            return value
        raise ValueError(f"BCM number {value} is outside 0..27")
    text = value.strip().upper()
    if match := _BCM_NAME.match(text):
        number = int(match.group(1))
        if number <= 27:
            return number
        raise ValueError(f"{value!r}: BCM number {number} is outside 0..27")
    if match := _BOARD_NAME.match(text):
        board = int(match.group(1))
        if board in BOARD_TO_BCM:
            return BOARD_TO_BCM[board]
        raise ValueError(f"{value!r}: header pin {board} is not a GPIO pin")
    raise ValueError(f'{value!r} is not a pin: use a BCM number 0..27 or a name like "GPIO17" or "BOARD11"')


Pin = Annotated[int, BeforeValidator(pin_to_bcm)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GateSection(_Section):
    """``[gate]``: who this gate is and how it behaves."""

    id: str
    site: str
    name: str | None = None
    direction: Literal["in", "out"] = "in"
    simulate: bool = False
    fail_mode: Literal["safe", "secure"] = "safe"
    data_dir: Annotated[Path, Field(strict=False)] = DEFAULT_DATA_DIR

    @field_validator("id", "site")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not is_valid_id(value):
            raise ValueError("must match ^[a-z0-9][a-z0-9_-]{0,31}$ (lowercase letters, digits, '-', '_')")
        return value

    @property
    def display_name(self) -> str:
        """The human name of the gate, falling back to its id."""
        return self.name or self.id


class CentralSection(_Section):
    """``[central]``: the central server's HTTP API."""

    url: str
    token: str | None = None
    token_file: Annotated[Path | None, Field(strict=False)] = None
    timeout: Annotated[float, Field(gt=0, le=120, strict=False)] = 10.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_token_source(self) -> CentralSection:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set either token or token_file, not both")
        return self

    def resolve_token(self) -> str | None:
        """Return the API token: inline, else from token_file, else from $VAORA_GATE_TOKEN, else None."""
        if self.token is not None:
            return self.token
        if self.token_file is not None:
            return self.token_file.read_text(encoding="utf-8").strip()
        return os.environ.get(TOKEN_ENV) or None


class MqttSection(_Section):
    """``[mqtt]``: the broker connection."""

    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password_file: Annotated[Path | None, Field(strict=False)] = None
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    resend_seconds: Annotated[float, Field(gt=0, le=3600, strict=False)] = 30.0

    def resolve_password(self) -> str | None:
        """Return the broker password from password_file, else $VAORA_MQTT_PASSWORD, else None."""
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return os.environ.get(MQTT_PASSWORD_ENV) or None


class ScannerSection(_Section):
    """``[scanner]``: where scanned codes come from."""

    type: Literal["serial", "stdin"] = "serial"
    device: str = "/dev/ttyACM0"
    baudrate: Annotated[int, Field(ge=300, le=4_000_000)] = 9600
    terminator: Literal["cr", "lf", "crlf", "gap"] = "cr"
    gap_ms: Annotated[int, Field(ge=5, le=5000)] = 50
    prefix: str = ""
    suffix: str = ""
    max_length: Annotated[int, Field(ge=1, le=MAX_SCAN_LENGTH)] = MAX_SCAN_LENGTH


class PinsSection(_Section):
    """``[pins]``: BCM numbers (or gpiozero names) of the actuators; stored as BCM numbers."""

    relay: Pin = 17
    green_led: Pin = 27
    red_led: Pin = 22

    @model_validator(mode="after")
    def _distinct(self) -> PinsSection:
        seen: dict[int, str] = {}
        for name in ("relay", "green_led", "red_led"):
            bcm = getattr(self, name)
            if bcm in seen:
                raise ValueError(f"{name} uses GPIO{bcm}, already used by {seen[bcm]}")
            seen[bcm] = name
        return self


class TurnstileSection(_Section):
    """``[turnstile]``: how long an unlock lasts."""

    unlock_seconds: Annotated[float, Field(ge=0.2, le=30, strict=False)] = 5.0


class GateConfig(_Section):
    """The whole per-gate configuration."""

    gate: GateSection
    central: CentralSection
    mqtt: MqttSection = MqttSection()
    scanner: ScannerSection = ScannerSection()
    pins: PinsSection = PinsSection()
    turnstile: TurnstileSection = TurnstileSection()


def _format_errors(exc: ValidationError) -> list[str]:
    errors: list[str] = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required key is missing"
        else:
            message = err["msg"].removeprefix("Value error, ")
        errors.append(f"{key}: {message}")
    return errors


def _check_secret_files(config: GateConfig) -> list[str]:
    errors = []
    for key, path in (("central.token_file", config.central.token_file),
                      ("mqtt.password_file", config.mqtt.password_file)):
        if path is not None and not os.access(path, os.R_OK):
            errors.append(f"{key}: cannot read {path}")
    return errors


def parse_config(data: dict[str, Any]) -> GateConfig:
    """Validate an already-parsed TOML document (a dict); raise ConfigError listing every problem."""
    try:
        config = GateConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    if errors := _check_secret_files(config):
        raise ConfigError(errors)
    return config


def load_config(path: str | os.PathLike[str]) -> GateConfig:
    """Read and validate a per-gate TOML file; raise ConfigError listing every problem."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"file: cannot read {path}: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(["file: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"toml: {exc}"]) from None
    return parse_config(data)
