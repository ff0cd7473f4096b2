"""The status page wired to a real ``Gate`` (simulated pins, real SQLite cache, in-memory transport).

Checks that what the guard's page receives follows what the gate does: scans decided by the real decision
and cache, the connection state, and that stopping the gate closes the page's stream.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gate.app import Gate
from gate.config import GateConfig
from gate.scanners import ScanEvent
from gate.status import StatusServer
from gate.store import GateStore
from protocols.reasons import Reason
from tests.conftest import scaled
from tests.gate.gate_helpers import NOW, FakeTransport, IdleScanner, World
from tests.gate.test_status_page import SseClient


def scan(text: str) -> ScanEvent:
    """A clean scan of ``text``."""
    return ScanEvent(text, Reason.OK, "test", time.monotonic())


@pytest.fixture
def gate_with_page(world: World, make_config: Callable[..., GateConfig]) -> Iterator[tuple[Gate, FakeTransport]]:
    """A started gate with its status page on a free loopback port."""
    config = make_config(status={"enabled": True, "listen": "127.0.0.1", "port": 0})
    seed = GateStore(config.gate.data_dir)
    seed.load_snapshot(world.snapshot, NOW)
    seed.close()
    transport = FakeTransport()
    gate = Gate(
        config,
        pin_factory=MockFactory(),
        scanner=IdleScanner(),
        transport=transport,
        clock=lambda: NOW,
        delivery_poll_s=0.05,
        flush_timeout=0.1,
    )
    gate.start()
    yield gate, transport
    gate.stop()


def api_status(server: StatusServer) -> dict[str, Any]:
    """GET /api/status as JSON."""
    with urllib.request.urlopen(server.url + "api/status", timeout=3) as response:
        return json.loads(response.read())


def test_page_follows_the_real_gate(gate_with_page: tuple[Gate, FakeTransport], world: World) -> None:
    gate, transport = gate_with_page
    server = gate.status_server
    assert isinstance(server, StatusServer)
    state = api_status(server)
    assert state["ok"] is True
    assert (state["gate"]["id"], state["gate"]["site_id"], state["gate"]["cache_seq"]) == ("g1", "hq", 42)
    assert state["gate"]["online"] is True
    assert state["last"] is None

    client = SseClient(server)
    try:
        client.next_event()
        gate.handle_scan(scan(world.codes[1]))
        _, event = client.next_event(within=scaled(5.0))
        while event["last"] is None or event["last"]["name"] != "Nguyễn Văn 1":
            _, event = client.next_event(within=scaled(5.0))
        assert event["last"]["allowed"] is True
        assert event["last"]["reason"] == "ok"
        assert event["last"]["organisation"] == "Sở Tư pháp"
        assert event["last"]["time_local"].startswith("15:00:00")  # NOW is 08:00 UTC (the date follows if not today)
        # No passage sensor here: the relay opens for 0.3 s. The panel says so, the banner invites in, and once
        # the relay closes both say the turnstile is locked again.
        seen = [event]
        while seen[-1]["gate"]["turnstile_state"] != "locked":
            seen.append(client.next_event(within=scaled(5.0))[1])
        assert all(e["banner"] == "enter" for e in seen if e["gate"]["turnstile_state"] == "unlocked")
        event = seen[-1]
        assert event["banner"] == "entered" and event["last"]["name"] == "Nguyễn Văn 1"

        gate.handle_scan(scan(world.codes[9001]))  # revoked delegate
        while event["last"]["reason"] != "revoked":
            _, event = client.next_event(within=2)
        assert event["last"]["allowed"] is False
        assert [s["reason"] for s in event["recent"]][:2] == ["revoked", "ok"]

        transport.connected = False
        transport.offline_since = NOW
        while event["gate"]["online"]:
            _, event = client.next_event(within=2)
        assert event["gate"]["offline_since_local"].startswith("15:00:00")

        gate.stop()
        with pytest.raises(EOFError):
            while True:
                client.next_event(within=3)
    finally:
        client.close()


CCCD_QR = "001085012345|123456789|Nguyễn Văn Ánh|15081985|Nam|Số 1 Đinh Tiên Hoàng, Hoàn Kiếm, Hà Nội|20042021"


def test_a_citizen_id_card_sends_the_person_to_the_desk(gate_with_page: tuple[Gate, FakeTransport]) -> None:
    """A CCCD held up at the turnstile is refused with ``id_card``; the guard's page tells the person, in
    Vietnamese first, to go to the desk, and nothing of the card (its ID number) leaves the gate."""
    gate, _ = gate_with_page
    server = gate.status_server
    assert isinstance(server, StatusServer)
    decision, checkin = gate.handle_scan(scan(CCCD_QR))
    assert (decision.allowed, decision.reason) == (False, Reason.ID_CARD)
    assert not gate.turnstile.is_unlocked
    last = api_status(server)["last"]
    assert (last["allowed"], last["reason"]) == (False, "id_card")
    assert last["reason_vi"] == "Đây là thẻ CCCD. Vui lòng đến bàn tiếp đón."
    assert last["reason_en"] == "This is a citizen ID card. Please go to the reception desk."
    assert checkin is not None and checkin.credential is None
    assert "001085012345" not in checkin.model_dump_json()
