"""Gate alarms on real parts, in a real browser: a gate (simulated pins, its turnstile's rotation sensor and
emergency input wired) reports a forced door and its emergency input through Mosquitto, central's ingest (its own
process) raises the alarms, and the pages served by ``vaora-central serve`` show them over their open event
streams without reloading: the organiser's live dashboard and fleet page, and the guard's alarm page, where the
guard acknowledges the forced door (it then leaves every active panel and stays in the history, with the guard's
name). How fast is measured on a quiet machine by the same path as ``benchmarks/dashboard_latency.py``; here each
step waits on what the page shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gate.app import Gate
from gate.config import parse_config
from tests.conftest import scaled, wait_until

from ..conftest import CHROMIUM
from .conftest import GREEN, RED, RELAY, Central, open_page, updated_live, watch_live_stream
from .test_desk_browser import GUARD, ORGANISER, log_in, setup_desk

SENSOR, EMERGENCY = 5, 13

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


@pytest.fixture
def wired_gate(central: Central, broker: Any, tmp_path: Path, scanner_pty: tuple[int, str]) -> Iterator[Gate]:
    """Gate ``lobby-1`` at site hq on simulated pins, with a rotation sensor and an emergency input (contacts to
    GND: LOW is active), connected to the broker; stopped at teardown."""
    response = central.api("POST", "/api/v1/gates", json={"gate_id": "lobby-1", "site_id": "hq",
                                                           "name": "Cổng chính 1"})
    assert response.status_code == 201, response.text
    config = parse_config({
        "gate": {"id": "lobby-1", "site": "hq", "fail_mode": "secure", "data_dir": str(tmp_path / "gate")},
        "central": {"url": central.url, "token": response.json()["token"], "timeout": 5},
        # No heartbeat during the test: the emergency can only reach central by the status published on its change.
        "mqtt": {"host": broker.host, "port": broker.port, "resend_seconds": 2, "heartbeat_seconds": 3600},
        "scanner": {"type": "serial", "device": scanner_pty[1], "baudrate": 9600, "terminator": "cr"},
        "pins": {"relay": RELAY, "green_led": GREEN, "red_led": RED, "passage_sensor": SENSOR,
                 "emergency": EMERGENCY},
        "turnstile": {"unlock_seconds": 0.5},
        "status": {"enabled": False},
    })
    gate = Gate(config, pin_factory=MockFactory())
    gate.start()
    wait_until(lambda: gate.transport is not None and gate.transport.is_connected, timeout=30)
    yield gate
    gate.stop()


def alarm_item(page: Any, kind_text: str) -> Any:
    return page.locator("#alarm-list li[data-alarm]", has_text=kind_text)


def test_a_forced_door_and_an_emergency_reach_the_pages_live_and_a_guard_acknowledges(
        central: Central, wired_gate: Gate, browser: Any) -> None:
    meeting_id = setup_desk(central)["meeting_id"]  # a meeting at site hq running now, a guard and an organiser
    factory = wired_gate.pin_factory

    dashboard = open_page(browser)
    log_in(dashboard, central.url, ORGANISER)
    dashboard.goto(f"{central.url}/meetings/{meeting_id}/truc-tiep")
    dashboard.wait_for_selector("#dash-live[data-state='live']")
    watch_live_stream(dashboard)
    fleet = open_page(browser)
    log_in(fleet, central.url, ORGANISER)
    fleet.goto(f"{central.url}/cong/")
    guard = open_page(browser)
    log_in(guard, central.url, GUARD)
    guard.get_by_role("link", name="Cảnh báo").click()
    guard.wait_for_url(f"{central.url}/cong/canh-bao")
    for page in (dashboard, fleet, guard):
        assert page.text_content("#alarm-count") == "0"
    # Each page's stream is open before the gate acts, so what follows can only arrive over it.
    fleet.wait_for_function("() => window.vaoraFleet.source.readyState === EventSource.OPEN")
    guard.wait_for_function("() => window.vaoraAlarms.source.readyState === EventSource.OPEN")

    sensor = factory.pin(SENSOR)
    sensor.drive_low()  # the arm turns while the turnstile is locked: nobody was let through
    sensor.drive_high()
    for page in (dashboard, fleet, guard):
        alarm_item(page, "Cổng bị vượt trái phép").wait_for()
        assert "Cổng chính 1" in alarm_item(page, "Cổng bị vượt trái phép").text_content()  # by name
        assert page.text_content("#alarm-count") == "1"
    assert updated_live(dashboard), "the alarm came over the dashboard's open event stream, in the same document"

    factory.pin(EMERGENCY).drive_low()  # the fire alarm's contact closes: the gate publishes its status at once
    for page in (dashboard, fleet, guard):
        alarm_item(page, "Mở khẩn cấp").wait_for()
    assert wait_until(lambda: wired_gate.cycle.emergency, timeout=scaled(5))

    forced = alarm_item(guard, "Cổng bị vượt trái phép")
    forced.get_by_label("Ghi chú").fill("Đã kiểm tra camera, nhân viên đẩy nhầm")
    forced.get_by_role("button", name="Xác nhận").click()
    guard.locator("#alarm-result.ok").wait_for()
    assert "Đã xác nhận cảnh báo" in guard.text_content("#alarm-result")
    for page in (dashboard, fleet, guard):  # it leaves every active panel, over each page's stream
        page.wait_for_function("() => !document.querySelector('#alarm-list').textContent"
                               ".includes('Cổng bị vượt trái phép')")
        assert alarm_item(page, "Mở khẩn cấp").count() == 1
    guard.wait_for_function("() => document.querySelector('#alarm-history').textContent.includes('nhân viên đẩy')")
    history = guard.text_content("#alarm-history")
    assert "baove1" in history and "Cổng bị vượt trái phép" in history
    assert updated_live(dashboard)

    factory.pin(EMERGENCY).drive_high()  # released: shown as ended until someone acknowledges it
    dashboard.wait_for_function("() => document.querySelector('#alarm-list').textContent.includes('đã kết thúc')")
