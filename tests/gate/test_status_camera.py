"""The guard's page on a camera gate: frames/s, the last code read, and a code seen but refused, with its reason.

A real ``Gate`` (simulated pins, real SQLite cache) reads a real ``CameraScanner`` over hard frames in memory:
one shows a delegate's compact code, one a code the gate does not know, one has the wrong size (dropped).
The page is read over HTTP and in Chromium.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from gate.app import Gate
from gate.camera import CameraScanner, MemorySource, ZxingDecoder
from gate.camera.hard_frames import render_empty_frame, render_hard_frame
from gate.camera.synthetic import sample_compact_codes
from gate.config import GateConfig
from gate.status import StatusServer
from gate.store import GateStore
from tests.conftest import wait_until
from tests.gate.gate_helpers import NOW, FakeTransport, IdleScanner, World
from tests.gate.test_status_page import browser, expect, page  # noqa: F401 (fixtures)

UNKNOWN = sample_compact_codes(1, seed=321)[0]


def _api(server: StatusServer) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + "api/status", timeout=3) as response:
        return dict(json.loads(response.read()))


@pytest.fixture
def camera_gate(world: World, make_config: Callable[..., GateConfig]) -> Iterator[tuple[Gate, CameraScanner]]:
    """A started gate whose camera shows a known code, empties, a wrong-size frame, then an unknown code."""
    config = make_config(status={"enabled": True, "listen": "127.0.0.1", "port": 0})
    seed = GateStore(config.gate.data_dir)
    seed.load_snapshot(world.snapshot, NOW)
    seed.close()
    empties = [render_empty_frame("room", i) for i in range(3)]
    frames = [render_hard_frame(world.codes[1], "baseline", 1), *empties, np.zeros((10, 10), np.uint8),
              render_hard_frame(UNKNOWN, "baseline", 2), *empties]
    scanner = CameraScanner(MemorySource(frames, loop=True, interval_s=0.02), ZxingDecoder(),
                            dedup_window_s=600.0)
    gate = Gate(config, pin_factory=MockFactory(), scanner=scanner, transport=FakeTransport(),
                clock=lambda: NOW, delivery_poll_s=0.05, flush_timeout=0.1)
    gate.start()
    yield gate, scanner
    gate.stop()


def test_status_shows_frame_rate_last_decode_and_the_refused_code(
    camera_gate: tuple[Gate, CameraScanner], page: Any  # noqa: F811
) -> None:
    gate, scanner = camera_gate
    server = gate.status_server
    assert isinstance(server, StatusServer)
    wait_until(lambda: scanner.frame_rate() > 0 and scanner.events >= 2, timeout=20.0)
    camera = _api(server)["gate"]["camera"]
    assert camera["frames_per_s"] > 0 and camera["frames"] >= 9 and camera["dropped"] >= 1
    assert camera["last_decode_local"] is not None
    assert camera["refused_reason"] == "unknown_code"
    assert camera["refused_reason_vi"] and camera["refused_reason_en"]

    page.goto(server.url)
    expect(page.locator("#card-camera")).to_be_visible()
    expect(page.locator("#camera")).to_contain_text("hình/giây")
    expect(page.locator("#camera-decode")).to_contain_text("Đọc được mã lúc")
    expect(page.locator("#camera-refused")).to_contain_text("Thấy mã nhưng từ chối: " + camera["refused_reason_vi"])


def test_a_gate_without_camera_has_no_camera_card(
    world: World, make_config: Callable[..., GateConfig], page: Any  # noqa: F811
) -> None:
    config = make_config(status={"enabled": True, "listen": "127.0.0.1", "port": 0})
    gate = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), transport=FakeTransport(),
                clock=lambda: NOW, delivery_poll_s=0.05, flush_timeout=0.1)
    gate.start()
    try:
        server = gate.status_server
        assert isinstance(server, StatusServer)
        assert _api(server)["gate"]["camera"] is None
        page.goto(server.url)
        expect(page.locator("#scanner")).to_be_visible()
        expect(page.locator("#card-camera")).to_be_hidden()
    finally:
        gate.stop()


def test_camera_picture_on_demand_only_when_allowed_and_at_a_low_rate(
    world: World, make_config: Callable[..., GateConfig], page: Any  # noqa: F811
) -> None:
    """``[status] camera_snapshot = true``: a button shows the last frame as a JPEG; off, ``/camera.jpg`` is 404."""
    config = make_config(status={"enabled": True, "listen": "127.0.0.1", "port": 0, "camera_snapshot": True})
    frame = render_hard_frame(world.codes[1], "baseline", 5)
    scanner = CameraScanner(MemorySource([frame], loop=True, interval_s=0.05), ZxingDecoder())
    gate = Gate(config, pin_factory=MockFactory(), scanner=scanner, transport=FakeTransport(),
                clock=lambda: NOW, delivery_poll_s=0.05, flush_timeout=0.1)
    gate.start()
    try:
        server = gate.status_server
        assert isinstance(server, StatusServer)
        wait_until(lambda: scanner.frames >= 2)
        with urllib.request.urlopen(server.url + "camera.jpg", timeout=3) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
            first = response.read()
        assert first[:2] == b"\xff\xd8" and 1000 < len(first) < 60_000
        with urllib.request.urlopen(server.url + "camera.jpg", timeout=3) as response:
            assert response.read() == first, "a second request within 2 s gets the same picture"
        assert _api(server)["gate"]["camera"]["snapshot"] is True
        page.goto(server.url)
        page.locator("#camera-snapshot-button").click()
        expect(page.locator("#camera-snapshot")).to_be_visible()
        page.wait_for_function("() => document.getElementById('camera-snapshot').naturalWidth === 320")
    finally:
        gate.stop()


def test_without_the_setting_there_is_no_camera_picture(camera_gate: tuple[Gate, CameraScanner]) -> None:
    gate, _ = camera_gate
    server = gate.status_server
    assert isinstance(server, StatusServer)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(server.url + "camera.jpg", timeout=3)
    assert missing.value.code == 404
    assert _api(server)["gate"]["camera"]["snapshot"] is False
