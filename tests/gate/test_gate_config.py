"""Per-gate TOML config: defaults, every bad key listed, pins, secrets, the CLI and the example file."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from central.messaging import certs
from gate.cli import main
from gate.config import ConfigError, load_config
from protocols.mqtt import TlsFiles

REPO = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)
EXAMPLES = sorted((REPO / "firmware_config").glob("*.toml"))

MINIMAL = """
[gate]
id = "g1"
site = "hq"

[central]
url = "http://central.local:8000"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.errors


def test_minimal_file_gets_operator_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.gate.fail_mode == "safe"
    assert config.gate.direction == "in"
    assert config.gate.simulate is False
    assert config.gate.display_name == "g1"
    assert config.mqtt.port == 1883
    assert config.scanner.type == "serial" and config.scanner.max_length == 256
    assert (config.pins.relay, config.pins.green_led, config.pins.red_led) == (17, 27, 22)
    assert config.turnstile.unlock_seconds == 5.0


def test_every_example_file_loads_and_comments_every_key() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"plain-gpio.toml", "relay-hat.toml", "usb-hid.toml", "camera.toml"} <= names
    for path in EXAMPLES:
        config = load_config(path)
        assert config.gate.id and config.gate.site
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if "=" in line and not line.startswith(("#", "[")):
                # a comment right above, or above a run of keys sharing it (prefix/suffix, width/height)
                above = number - 1
                while above > 0 and "=" in lines[above] and not lines[above].startswith("#"):
                    above -= 1
                assert number - above <= 2 and lines[above].startswith("#"), (
                    f"{path.name}:{number + 1} {line!r} has no comment")


def test_examples_per_wiring() -> None:
    by_name = {path.name: load_config(path) for path in EXAMPLES}
    plain, hat = by_name["plain-gpio.toml"], by_name["relay-hat.toml"]
    assert plain.pins.relay_active_high and plain.pins.passage_sensor is not None
    assert (hat.pins.relay, hat.pins.relay_active_high) == (26, False)
    hid = by_name["usb-hid.toml"].scanner
    assert (hid.type, hid.vendor, hid.product, hid.device) == ("hid", 0x0C2E, 0x0B61, None)
    camera = by_name["camera.toml"].scanner
    assert (camera.type, camera.camera, camera.decoder, camera.resolved_device) == ("camera", "picamera2",
                                                                                     "zxing", "0")


SCANNER_CASES = [
    ('type = "serial"', {"resolved_device": "/dev/ttyACM0", "baudrate": 9600, "debounce_ms": 1500}),
    ('type = "hid"\ndevice = "/dev/input/event3"', {"resolved_device": "/dev/input/event3", "keymap": "us",
                                                     "grab": True, "stuck_key_ms": 500}),
    ('type = "hid"\nvendor = 1504\nproduct = "0x1200"\nkeymap = "de"\ngrab = false\ntab_terminates = true',
     {"vendor": 0x05E0, "product": 0x1200, "resolved_device": None, "keymap": "de", "grab": False,
      "tab_terminates": True}),
    ('type = "camera"', {"camera": "picamera2", "resolved_device": "0", "decoder": "zxing", "dedup_ms": 2000,
                         "width": 640, "height": 480}),
    ('type = "camera"\ncamera = "opencv"\ndevice = "/dev/video2"\ndecoder = "pyzbar"\ndedup_ms = 500',
     {"camera": "opencv", "resolved_device": "/dev/video2", "decoder": "pyzbar", "dedup_ms": 500}),
    ('type = "camera"\ncamera = "images"\ndevice = "/srv/frames"', {"resolved_device": "/srv/frames"}),
]


@pytest.mark.parametrize(("text", "expected"), SCANNER_CASES)
def test_scanner_types_and_their_defaults(tmp_path: Path, text: str, expected: dict[str, object]) -> None:
    scanner = load_config(write(tmp_path, MINIMAL + f"\n[scanner]\n{text}\n")).scanner
    assert {key: getattr(scanner, key) for key in expected} == expected


@pytest.mark.parametrize(("text", "error"), [
    ('type = "hid"', "scanner.device: required for a 'hid' scanner unless vendor and product are set"),
    ('type = "hid"\nvendor = 1', "scanner.device: required for a 'hid' scanner unless vendor and product are set"),
    ('type = "hid"\ndevice = "/dev/input/event1"\nvendor = 1\nproduct = 2',
     "scanner.device: give device or vendor + product, not both"),
    ('type = "hid"\nvendor = "0xZZ"\nproduct = 1', "scanner.vendor: '0xZZ' is not a USB id"),
    ('type = "hid"\nvendor = 70000\nproduct = 1', "scanner.vendor: USB id 70000 is outside 0..0xffff"),
    ('type = "hid"\ndevice = "/dev/input/event1"\nkeymap = "fr"', "scanner.keymap: "),
    ('type = "serial"\nvendor = 1', "scanner.vendor: not used by a 'serial' scanner"),
    ('type = "camera"\nbaudrate = 9600', "scanner.baudrate: not used by a 'camera' scanner"),
    ('type = "camera"\ncamera = "video"', "scanner.device: required for camera 'video' (a path)"),
    ('type = "camera"\ndevice = "/dev/video0"', 'scanner.device: a picamera2 camera is given by its number'),
    ('type = "camera"\ncamera = "webcam"', "scanner.camera: "),
    ('type = "camera"\nwidth = 8', "scanner.width: "),
    ('debounce_ms = -1', "scanner.debounce_ms: "),
])
def test_bad_scanner_settings_name_the_key(tmp_path: Path, text: str, error: str) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + f"\n[scanner]\n{text}\n"))
    assert len(errors) == 1 and errors[0].startswith(error), errors


def test_build_scanner_makes_each_type(tmp_path: Path) -> None:
    from gate.camera import CameraScanner
    from gate.scanners import build_scanner
    from gate.scanners.hid import HidScanner
    from gate.scanners.serial import SerialScanner

    def built(text: str) -> object:
        return build_scanner(load_config(write(tmp_path, MINIMAL + f"\n[scanner]\n{text}\n")).scanner)

    serial_scanner = built('type = "serial"')
    assert isinstance(serial_scanner, SerialScanner) and serial_scanner.device == "/dev/ttyACM0"
    hid = built('type = "hid"\nvendor = "0x05e0"\nproduct = "0x1200"\nstuck_key_ms = 300')
    assert isinstance(hid, HidScanner) and (hid.vendor, hid.product, hid.path) == (0x05E0, 0x1200, None)
    assert hid.decoder.stuck_key_s == 0.3
    camera = built(f'type = "camera"\ncamera = "images"\ndevice = "{tmp_path}"\ndedup_ms = 750')
    assert isinstance(camera, CameraScanner) and camera.dedup.window_s == 0.75


def test_new_pins_status_and_turnstile_keys(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + """
[pins]
relay = 26
relay_active_high = false
buzzer = "GPIO23"
passage_sensor = 5
manual_button = "BOARD31"
emergency = 13

[turnstile]
sensor_debounce_ms = 80

[status]
listen = "0.0.0.0"
port = 9090
"""))
    pins = config.pins
    assert (pins.relay, pins.relay_active_high, pins.buzzer, pins.passage_sensor, pins.manual_button,
            pins.emergency) == (26, False, 23, 5, 6, 13)
    assert config.turnstile.sensor_debounce_ms == 80
    assert (config.status.enabled, config.status.listen, config.status.port) == (True, "0.0.0.0", 9090)
    defaults = load_config(write(tmp_path, MINIMAL))
    assert (defaults.pins.buzzer, defaults.pins.passage_sensor, defaults.pins.relay_active_high) == (None, None,
                                                                                                    True)
    assert (defaults.status.enabled, defaults.status.listen, defaults.status.port) == (True, "127.0.0.1", 8080)


def test_an_input_on_an_output_pin_is_an_error(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + "\n[pins]\npassage_sensor = 27\n"))
    assert errors == ["pins: passage_sensor uses GPIO27, already used by green_led"]


@pytest.mark.parametrize("value", ['"seventeen"', "17.5", "true", "28", "-1", '"GPIO40"', '"BOARD1"', "[17]"])
def test_bad_relay_pin_names_the_key(tmp_path: Path, value: str) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + f"\n[pins]\nrelay = {value}\n"))
    assert len(errors) == 1
    assert errors[0].startswith("pins.relay: ")


@pytest.mark.parametrize(("value", "bcm"), [("4", 4), ('"GPIO4"', 4), ('"BCM4"', 4), ('"BOARD7"', 4),
                                            ('"J8:7"', 4), ('"gpio5"', 5)])
def test_pin_names_resolve_to_bcm(tmp_path: Path, value: str, bcm: int) -> None:
    config = load_config(write(tmp_path, MINIMAL + f"\n[pins]\nrelay = {value}\n"))
    assert config.pins.relay == bcm


def test_duplicate_pins_are_an_error_even_under_different_names(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + '\n[pins]\nrelay = "BOARD11"\ngreen_led = 17\n'))
    assert len(errors) == 1 and errors[0].startswith("pins: ") and "GPIO17" in errors[0]


def test_every_bad_key_is_listed_with_unknown_keys(tmp_path: Path) -> None:
    text = """
[gate]
id = "Gate One"
site = "hq"
direction = "sideways"
colour = "blue"

[central]
url = "ftp://nope"

[mqtt]
port = 70000

[scanner]
terminator = "tab"

[turnstile]
unlock_seconds = 0.1

[extra]
x = 1
"""
    errors = errors_of(write(tmp_path, text))
    keys = sorted(e.split(":")[0] for e in errors)
    assert keys == sorted(["gate.id", "gate.direction", "gate.colour", "central.url", "mqtt.port",
                           "scanner.terminator", "turnstile.unlock_seconds", "extra"])
    assert "gate.colour: unknown key" in errors
    assert "extra: unknown key" in errors


def test_missing_required_keys(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, "[gate]\nid = 'g1'\n"))
    assert sorted(errors) == ["central: required key is missing", "gate.site: required key is missing"]


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + "\n[pins]\nrelay = = 3\n"))
    assert len(errors) == 1 and errors[0].startswith("toml: ")
    assert "line 10" in errors[0] and "column" in errors[0]


def test_missing_file(tmp_path: Path) -> None:
    errors = errors_of(tmp_path / "nope.toml")
    assert errors[0].startswith("file: cannot read")


def test_token_from_file_env_or_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAORA_GATE_TOKEN", "from-env")
    assert load_config(write(tmp_path, MINIMAL)).central.resolve_token() == "from-env"
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    config = load_config(write(tmp_path, MINIMAL + f'token_file = "{token_file}"\n'))
    assert config.central.resolve_token() == "from-file"
    monkeypatch.delenv("VAORA_GATE_TOKEN")
    assert load_config(write(tmp_path, MINIMAL)).central.resolve_token() is None


def test_unreadable_token_file_and_two_token_sources(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + f'token_file = "{tmp_path / "missing"}"\n'))
    assert errors == [f"central.token_file: cannot read {tmp_path / 'missing'}"]
    errors = errors_of(write(tmp_path, MINIMAL + f'token = "x"\ntoken_file = "{tmp_path}"\n'))
    assert errors == ["central: set either token or token_file, not both"]


def test_cli_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(write(tmp_path, MINIMAL))]) == 0
    assert capsys.readouterr().out.startswith("OK")


def test_cli_subprocess_bad_config_exits_non_zero_and_lists_every_error(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('site = "hq"', 'site = "hq"\nfail_mode = "maybe"')
                 + '\n[pins]\nrelay = "seventeen"\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "gate.cli", "check-config", str(path)], env=env,
                            capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert any(line.startswith("pins.relay: ") and "seventeen" in line for line in lines)
    assert any(line.startswith("gate.fail_mode: ") for line in lines)
    assert "Traceback" not in result.stderr


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site CA with gate g1's client certificate, made by central's certificate commands."""
    directory = tmp_path / "site"
    certs.create_site_ca(directory, now=NOW)
    certs.issue_gate(directory, "g1", now=NOW)
    certs.issue_gate(directory, "g2", now=NOW)
    return directory


def tls_section(site: Path, **overrides: str) -> str:
    keys = {"ca_file": site / "ca.crt", "cert_file": site / "certs" / "gate-g1.crt",
            "key_file": site / "certs" / "gate-g1.key", **overrides}
    return "\n[mqtt]\n" + "".join(f'{key} = "{value}"\n' for key, value in keys.items() if value != "")


def test_mqtt_tls_files_are_optional_and_become_tls_settings(tmp_path: Path, site: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL)).mqtt.tls_files() is None
    config = load_config(write(tmp_path, MINIMAL + tls_section(site) + "port = 8883\n"))
    assert config.mqtt.tls_files() == TlsFiles(site / "ca.crt", site / "certs" / "gate-g1.crt",
                                               site / "certs" / "gate-g1.key")


def test_an_mqtts_url_sets_host_port_and_tls(tmp_path: Path, site: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + tls_section(site) + 'url = "mqtts://broker.hq.example"\n'))
    assert (config.mqtt.host, config.mqtt.port) == ("broker.hq.example", 8883)
    assert config.mqtt.tls_files() == TlsFiles(site / "ca.crt", site / "certs" / "gate-g1.crt",
                                               site / "certs" / "gate-g1.key")
    # mqtts:// without a CA file: TLS against the system's trust store
    system = load_config(write(tmp_path, MINIMAL + '\n[mqtt]\nurl = "mqtts://broker.example:9883"\n'))
    assert (system.mqtt.port, system.mqtt.tls_files()) == (9883, TlsFiles())
    plain = load_config(write(tmp_path, MINIMAL + '\n[mqtt]\nurl = "mqtt://10.0.0.5"\n'))
    assert (plain.mqtt.host, plain.mqtt.port, plain.mqtt.tls_files()) == ("10.0.0.5", 1883, None)


def test_bad_mqtt_urls_are_named(tmp_path: Path, site: Path) -> None:
    (error,) = errors_of(write(tmp_path, MINIMAL + '\n[mqtt]\nurl = "https://broker"\n'))
    assert error.startswith("mqtt.url: ") and "mqtts://" in error
    (error,) = errors_of(write(tmp_path, MINIMAL + '\n[mqtt]\nurl = "mqtts://gate:secret@broker"\n'))
    assert error.startswith("mqtt.url: ") and "password" in error
    errors = errors_of(write(tmp_path, MINIMAL + '\n[mqtt]\nurl = "mqtts://broker"\nhost = "x"\nport = 1\n'))
    assert errors == ["mqtt.host: give url or host and port, not both",
                      "mqtt.port: give url or host and port, not both"]
    errors = errors_of(write(tmp_path, MINIMAL + tls_section(site) + 'url = "mqtt://broker"\n'))
    assert errors == ["mqtt.ca_file: TLS needs an mqtts:// url (mqtt:// is plain TCP)"]


def test_bad_mqtt_tls_files_stop_the_gate_naming_each_key(tmp_path: Path, site: Path) -> None:
    errors = errors_of(write(tmp_path, MINIMAL + tls_section(site, ca_file=str(tmp_path / "missing-ca.pem"),
                                                            cert_file="")))
    assert errors == [f"mqtt.ca_file: cannot read {tmp_path / 'missing-ca.pem'}: No such file or directory",
                      "mqtt.key_file: a key needs its certificate (cert_file)"]
    errors = errors_of(write(tmp_path, MINIMAL + f'\n[mqtt]\ncert_file = "{site / "certs" / "gate-g1.crt"}"\n'))
    assert errors == ["mqtt.cert_file: a client certificate needs TLS (an mqtts:// url, or the broker's CA in "
                      "mqtt.ca_file)"]


def test_an_unusable_key_stops_the_gate_naming_the_key(tmp_path: Path, site: Path) -> None:
    """Readable but unusable TLS files are caught at start, not at the first connection attempt."""
    garbage = tmp_path / "garbage.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", encoding="utf-8")
    assert errors_of(write(tmp_path, MINIMAL + tls_section(site, key_file=str(garbage)))) == [
        f"mqtt.key_file: {garbage} holds no usable PEM private key"]
    other = site / "certs" / "gate-g2.key"
    assert errors_of(write(tmp_path, MINIMAL + tls_section(site, key_file=str(other)))) == [
        f"mqtt.key_file: {other} is not the key of the certificate {site / 'certs' / 'gate-g1.crt'}"]
    missing = tmp_path / "missing.key"
    assert errors_of(write(tmp_path, MINIMAL + tls_section(site, key_file=str(missing)))) == [
        f"mqtt.key_file: cannot read {missing}: No such file or directory"]
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key((site / "certs" / "gate-g1.key").read_bytes(), None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"pass")))
    (error,) = errors_of(write(tmp_path, MINIMAL + tls_section(site, key_file=str(encrypted))))
    assert error.startswith(f"mqtt.key_file: {encrypted}: the key is encrypted")
    assert errors_of(write(tmp_path, MINIMAL + tls_section(site, ca_file=str(garbage)))) == [
        f"mqtt.ca_file: {garbage} holds no PEM certificate"]


def test_the_gate_process_refuses_to_start_with_a_bad_key_and_names_it(tmp_path: Path, site: Path) -> None:
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n", encoding="utf-8")
    missing = tmp_path / "nowhere" / "ca.crt"
    path = write(tmp_path, MINIMAL.replace('site = "hq"', 'site = "hq"\nsimulate = true')
                 + tls_section(site, key_file=str(garbage), ca_file=str(missing)) + 'url = "mqtts://127.0.0.1:9"\n')
    result = subprocess.run([sys.executable, "-m", "gate.cli", "--config", str(path)], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert result.stderr.splitlines()[1:] == [f"mqtt.ca_file: cannot read {missing}: No such file or directory",
                                              f"mqtt.key_file: {garbage} holds no usable PEM private key"]
    assert "Traceback" not in result.stderr


def test_outbox_retention_has_a_default_and_is_validated(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL)).outbox.keep_delivered_hours == 72
    assert load_config(write(tmp_path, MINIMAL + "\n[outbox]\nkeep_delivered_hours = 1.5\n")).outbox \
        .keep_delivered_hours == 1.5
    (error,) = errors_of(write(tmp_path, MINIMAL + "\n[outbox]\nkeep_delivered_hours = 0\n"))
    assert error.startswith("outbox.keep_delivered_hours: ")
