"""Per-gate configuration: a TOML file validated into pydantic models at start-up.

``load_config(path)`` returns a :class:`GateConfig` or raises :class:`ConfigError` whose ``errors`` lists
every problem as ``"dotted.key: message"`` (unknown keys included), so an operator fixes the file in one pass.
Secrets never live in the repository: the central API token comes from ``central.token_file`` or the
``VAORA_GATE_TOKEN`` environment variable (an inline ``central.token`` is accepted for bench setups), and the
MQTT password from ``mqtt.password_file`` or ``VAORA_MQTT_PASSWORD``.
"""

from __future__ import annotations

import importlib.util
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
from protocols.mqtt import TlsFiles, check_tls_files, parse_broker_url
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


class KeyedError(ValueError):
    """A model validator's problems, each tied to a key inside the section: ``[(key, message), ...]``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))
        self.problems = problems


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
    """``[mqtt]``: the broker connection, as ``host``/``port`` or as ``url`` (``mqtt://host[:1883]`` plain,
    ``mqtts://host[:8883]`` TLS). TLS is on with an ``mqtts://`` URL or a ``ca_file`` (the broker's certificate
    is checked against it; without it, against the system's trust store); ``cert_file`` / ``key_file`` add the
    gate's client certificate (the key may be inside the certificate file). The files are checked at start."""

    url: str | None = None
    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password_file: Annotated[Path | None, Field(strict=False)] = None
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    resend_seconds: Annotated[float, Field(gt=0, le=3600, strict=False)] = 30.0
    heartbeat_seconds: Annotated[float, Field(gt=0, le=3600, strict=False)] = 15.0
    ca_file: Annotated[Path | None, Field(strict=False)] = None
    cert_file: Annotated[Path | None, Field(strict=False)] = None
    key_file: Annotated[Path | None, Field(strict=False)] = None

    @model_validator(mode="before")
    @classmethod
    def _host_and_port_from_url(cls, data: Any) -> Any:
        """A ``url`` sets ``host`` and ``port`` (which may then not be given as well)."""
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        try:
            address = parse_broker_url(data["url"])
        except ValueError as exc:
            raise KeyedError([("url", str(exc))]) from None
        problems = [(key, "give url or host and port, not both") for key in ("host", "port") if key in data]
        if not address.tls and data.get("ca_file") is not None:
            problems.append(("ca_file", "TLS needs an mqtts:// url (mqtt:// is plain TCP)"))
        if problems:
            raise KeyedError(problems)
        return {**data, "host": address.host, "port": address.port}

    @property
    def uses_tls(self) -> bool:
        """True when the connection is TLS (an ``mqtts://`` url, or a ``ca_file``)."""
        return self.ca_file is not None or (self.url is not None and parse_broker_url(self.url).tls)

    def tls_files(self) -> TlsFiles | None:
        """The TLS files for :func:`protocols.mqtt.make_client`, or None for a plain connection."""
        if not self.uses_tls:
            return None
        return TlsFiles(ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file)

    def resolve_password(self) -> str | None:
        """Return the broker password from password_file, else $VAORA_MQTT_PASSWORD, else None."""
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return os.environ.get(MQTT_PASSWORD_ENV) or None


def _usb_id(value: Any) -> int:
    """A USB vendor/product id: an int 0..0xFFFF or a hex string such as "0x05e0" or "05e0"."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f'must be an id 0..0xffff, e.g. 0x05e0 or "0x05e0", not {type(value).__name__}')
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{1,4}", text):
            raise ValueError(f'{value!r} is not a USB id: use 4 hex digits like "0x05e0"')
        return int(text, 16)
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"USB id {value} is outside 0..0xffff")
    return value


UsbId = Annotated[int, BeforeValidator(_usb_id)]

# Which [scanner] keys each scanner type reads; any other key set explicitly is an error naming it.
_COMMON_SCANNER_KEYS = {"type", "max_length", "debounce_ms"}
SCANNER_KEYS: dict[str, set[str]] = {
    "serial": _COMMON_SCANNER_KEYS | {"device", "baudrate", "terminator", "gap_ms", "line_idle_ms", "prefix",
                                      "suffix"},
    "stdin": _COMMON_SCANNER_KEYS | {"prefix", "suffix"},
    "hid": _COMMON_SCANNER_KEYS | {"device", "vendor", "product", "keymap", "grab", "tab_terminates",
                                   "stuck_key_ms", "prefix", "suffix"},
    "camera": _COMMON_SCANNER_KEYS | {"camera", "device", "decoder", "dedup_ms", "width", "height", "symbologies",
                                      "passes", "alternate_passes",
                                      "extra_passes_every"},
}
DEFAULT_SERIAL_DEVICE = "/dev/ttyACM0"


class ScannerSection(_Section):
    """``[scanner]``: where scanned codes come from (serial, stdin, USB HID keyboard-wedge, or camera).

    ``device`` defaults per type: serial ``/dev/ttyACM0``; camera ``"0"`` for picamera2/opencv (required for
    images/video); HID has no default (give ``device`` or ``vendor`` + ``product``).
    """

    type: Literal["serial", "stdin", "hid", "camera"] = "serial"
    device: str | None = None
    max_length: Annotated[int, Field(ge=1, le=MAX_SCAN_LENGTH)] = MAX_SCAN_LENGTH
    debounce_ms: Annotated[int, Field(ge=0, le=60_000)] = 1500
    prefix: str = ""
    suffix: str = ""
    # serial
    baudrate: Annotated[int, Field(ge=300, le=4_000_000)] = 9600
    terminator: Literal["cr", "lf", "crlf", "gap"] = "cr"
    gap_ms: Annotated[int, Field(ge=5, le=5000)] = 50
    line_idle_ms: Annotated[int, Field(ge=20, le=5000)] = 300
    # hid
    vendor: UsbId | None = None
    product: UsbId | None = None
    keymap: Literal["us", "de"] = "us"
    grab: bool = True
    tab_terminates: bool = False
    stuck_key_ms: Annotated[int, Field(ge=50, le=10_000)] = 500
    # camera
    camera: Literal["picamera2", "opencv", "images", "video"] = "picamera2"
    decoder: Literal["zxing", "pyzbar"] = "zxing"
    dedup_ms: Annotated[int, Field(ge=0, le=600_000)] = 2000
    width: Annotated[int, Field(ge=16, le=4096)] = 640
    height: Annotated[int, Field(ge=16, le=4096)] = 480
    symbologies: Annotated[list[Literal["qr", "code128"]], Field(min_length=1)] = ["qr", "code128"]
    # the default: raw, denoised, then a motion deblur on every frame (BENCHMARKS.md "Camera decoding, hard
    # frames": under twice the cost of the old single pass on frames without a code)
    passes: Annotated[list[Literal["raw", "denoise", "global", "upscale", "flatten", "deblur"]],
                      Field(min_length=1)] = ["raw", "denoise", "deblur"]
    alternate_passes: bool = False
    extra_passes_every: Annotated[int, Field(ge=1, le=1000)] = 1

    @model_validator(mode="after")
    def _keys_fit_type(self) -> ScannerSection:
        problems = [(key, f"not used by a {self.type!r} scanner")
                    for key in sorted(self.model_fields_set - SCANNER_KEYS[self.type])]
        if self.device is not None and not self.device.strip():
            problems.append(("device", "must not be empty"))
        if self.type == "hid":
            has_ids = self.vendor is not None or self.product is not None
            if self.device is None and (self.vendor is None or self.product is None):
                problems.append(("device", "required for a 'hid' scanner unless vendor and product are set"))
            if self.device is not None and has_ids:
                problems.append(("device", "give device or vendor + product, not both"))
        if self.type == "camera" and self.camera in ("images", "video") and not self.device:
            problems.append(("device", f"required for camera {self.camera!r} (a path)"))
        if len(set(self.passes)) != len(self.passes):
            problems.append(("passes", "a pass may be named once"))
        if self.type == "camera" and self.camera == "picamera2" and self.device and not self.device.isdigit():
            problems.append(("device", 'a picamera2 camera is given by its number, e.g. "0"'))
        if problems:
            raise KeyedError(problems)
        return self

    @property
    def resolved_device(self) -> str | None:
        """The device to open: the configured one, else the type's default (None for a HID vendor/product)."""
        if self.device is not None:
            return self.device
        if self.type == "serial":
            return DEFAULT_SERIAL_DEVICE
        if self.type == "camera":
            return "0"
        return None


# Keys of [pins], in the order devices are claimed at start-up (the relay first: it must reach its rest level).
OUTPUT_PINS = ("relay", "green_led", "red_led", "buzzer")
INPUT_PINS = ("passage_sensor", "manual_button", "emergency")


class PinsSection(_Section):
    """``[pins]``: BCM numbers (or gpiozero names) of actuators and inputs; stored as BCM numbers.

    Inputs (``passage_sensor``, ``manual_button``, ``emergency``) are optional, wired as a contact to GND with
    the internal pull-up (active = pin LOW). ``relay_active_high = false`` is for relay boards that energise
    the relay when the pin is LOW (e.g. the Waveshare RPi Relay Board).
    """

    relay: Pin = 17
    green_led: Pin = 27
    red_led: Pin = 22
    buzzer: Pin | None = None
    passage_sensor: Pin | None = None
    manual_button: Pin | None = None
    emergency: Pin | None = None
    relay_active_high: bool = True

    @model_validator(mode="after")
    def _distinct(self) -> PinsSection:
        seen: dict[int, str] = {}
        for name in OUTPUT_PINS + INPUT_PINS:
            bcm = getattr(self, name)
            if bcm is None:
                continue
            if bcm in seen:
                raise ValueError(f"{name} uses GPIO{bcm}, already used by {seen[bcm]}")
            seen[bcm] = name
        return self


class TurnstileSection(_Section):
    """``[turnstile]``: how long an unlock lasts and how the passage sensor is read."""

    unlock_seconds: Annotated[float, Field(ge=0.2, le=30, strict=False)] = 5.0
    sensor_debounce_ms: Annotated[int, Field(ge=0, le=2000)] = 100


class StatusSection(_Section):
    """``[status]``: the guard's status page (HTTP). ``listen = "0.0.0.0"`` to serve the LAN.

    ``camera_snapshot``: a camera gate's page may show the camera's last frame on demand (a small grayscale
    picture, at most one every 2 s; it shows people, so it is off unless set).
    """

    enabled: bool = True
    listen: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    camera_snapshot: bool = False


class CommandsSection(_Section):
    """``[commands]``: remote commands from central. ``max_age_seconds``: a command issued longer ago than
    this (or that far in the future, clock skew) is refused as stale and never executed."""

    max_age_seconds: Annotated[float, Field(ge=1, le=3600, strict=False)] = 30.0


class OutboxSection(_Section):
    """``[outbox]``: check-ins central acknowledged are kept ``keep_delivered_hours`` (for the guard and for
    diagnosis), then deleted by the service loop; undelivered ones are never deleted."""

    keep_delivered_hours: Annotated[float, Field(gt=0, le=24 * 365, strict=False)] = 72.0


class GateConfig(_Section):
    """The whole per-gate configuration."""

    gate: GateSection
    central: CentralSection
    mqtt: MqttSection = MqttSection()
    scanner: ScannerSection = ScannerSection()
    pins: PinsSection = PinsSection()
    turnstile: TurnstileSection = TurnstileSection()
    status: StatusSection = StatusSection()
    commands: CommandsSection = CommandsSection()
    outbox: OutboxSection = OutboxSection()


def _format_errors(exc: ValidationError) -> list[str]:
    errors: list[str] = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "config"
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, KeyedError):
            errors.extend(f"{key}.{inner}: {message}" for inner, message in cause.problems)
            continue
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required key is missing"
        else:
            message = err["msg"].removeprefix("Value error, ")
        errors.append(f"{key}: {message}")
    return errors


def _check_files(config: GateConfig) -> list[str]:
    """Files named by the config that cannot be read, and TLS files that cannot be used (not PEM, an encrypted
    or mismatched key, a key without its certificate, a certificate without TLS)."""
    mqtt = config.mqtt
    errors = [f"{key}: cannot read {path}"
              for key, path in (("central.token_file", config.central.token_file),
                                ("mqtt.password_file", mqtt.password_file))
              if path is not None and not os.access(path, os.R_OK)]
    files = mqtt.tls_files()
    if files is not None:
        errors.extend(f"mqtt.{field}: {message}" for field, message in check_tls_files(files))
    elif mqtt.cert_file is not None or mqtt.key_file is not None:
        key = "mqtt.cert_file" if mqtt.cert_file is not None else "mqtt.key_file"
        errors.append(f"{key}: a client certificate needs TLS (an mqtts:// url, or the broker's CA in mqtt.ca_file)")
    return errors


def _check_libraries(config: GateConfig) -> list[str]:
    """Libraries the configured scanner needs that this install lacks, with the extra that brings them.

    A gate installs by role (README "Installing a gate"): ``vaora[gate]`` holds what serial, HID and stdin
    scanners use; ``camera`` adds numpy and zxing-cpp, ``webcam`` OpenCV, ``zbar`` pyzbar. picamera2 comes from
    Raspberry Pi OS's apt and is reported by its source when the camera starts.
    """
    scanner = config.scanner
    needs: list[tuple[str, str, str, str]] = []  # (key, module, library, extra)
    if scanner.type == "hid":
        needs.append(("scanner.type", "evdev", "evdev", "gate"))
    if scanner.type == "camera":
        needs.append(("scanner.type", "numpy", "numpy", "camera"))
        if scanner.decoder == "zxing":
            needs.append(("scanner.decoder", "zxingcpp", "zxing-cpp", "camera"))
        else:
            needs.append(("scanner.decoder", "pyzbar", "pyzbar", "zbar"))
        if scanner.camera != "picamera2":
            needs.append(("scanner.camera", "cv2", "OpenCV", "webcam"))
    return [f"{key}: needs {library}, which is not installed (pip install 'vaora[{extra}]')"
            for key, module, library, extra in needs if importlib.util.find_spec(module) is None]


def parse_config(data: dict[str, Any]) -> GateConfig:
    """Validate an already-parsed TOML document (a dict); raise ConfigError listing every problem."""
    try:
        config = GateConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    if errors := _check_files(config) + _check_libraries(config):
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
