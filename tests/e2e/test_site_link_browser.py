"""The fleet page follows a site's link live, in a real browser (Chromium through Playwright) on central's real
processes (``vaora-central serve`` and ``ingest``): the operator provisions the site's broker with ``broker-config
--site`` (the site shows as offline, never connected), then the bridge's state changes at the broker ("1", "0",
retained, as Mosquitto publishes it) and the open page shows the site connected, then offline with its gates by
their last known state, without a reload."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from devtools.broker import LocalBroker
from protocols import topics
from tests.conftest import scaled

from ..conftest import CHROMIUM
from .conftest import REPO, Central, open_page
from .test_dashboard_browser import create_admin, login

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


def cli(central: Central, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "central.cli", *args], env=central.env, cwd=REPO, check=True,
                   capture_output=True, timeout=scaled(60))


def publish_bridge_state(broker: LocalBroker, payload: bytes) -> None:
    """Publish the site's bridge state at the broker as Mosquitto does (QoS 1, retained)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="site-hq-bridge-sim")
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert connected.wait(scaled(10))
        client.publish(topics.site_bridge_state("hq"), payload, qos=1, retain=True).wait_for_publish(scaled(10))
    finally:
        client.loop_stop()
        client.disconnect()


def wait_text(page: Any, selector: str, text: str, present: bool = True) -> None:
    """Wait until the element's text contains (or no longer contains) ``text`` (a function: the CSP forbids
    eval)."""
    page.wait_for_function(
        "([selector, text, present]) => { const el = document.querySelector(selector);"
        " return !!el && el.textContent.includes(text) === present; }",
        arg=[selector, text, present])


def test_the_fleet_page_follows_a_sites_link_live(central: Central, broker: LocalBroker, tmp_path: Path,
                                                   browser: Any) -> None:
    username = create_admin(central, tmp_path)
    cli(central, "add-gate", "lobby-1", "--site", "hq", "--name", "Cổng sảnh")
    cli(central, "broker-config", str(tmp_path / "vaora"), "--site", "hq", "--core", "core-a:1883,core-b:1883")
    page = open_page(browser)
    login(page, central.url, username)
    page.goto(f"{central.url}/cong/")
    banner = page.text_content("#fleet-site-offline") or ""
    assert "Mất kết nối trạm (site offline): hq" in banner and "chưa từng kết nối tới trung tâm" in banner
    assert "Trạm chưa từng kết nối" in (page.text_content("#fleet-sites li[data-site='hq']") or "")

    publish_bridge_state(broker, b"1")  # the bridge connected
    wait_text(page, "#fleet-sites li[data-site='hq']", "Trạm đã kết nối")
    assert "site offline" not in (page.text_content("#fleet-site-offline") or "")

    publish_bridge_state(broker, b"0")  # its last will at the core
    wait_text(page, "#fleet-site-offline", "Mất kết nối trạm (site offline): hq")
    wait_text(page, "tr[data-gate='lobby-1'] .fleet-online", "Trạm mất kết nối")
    assert "Lần cuối" in (page.text_content("tr[data-gate='lobby-1'] .fleet-online") or "")
    assert "Mất kết nối trạm (site offline)" in (page.text_content("#fleet-sites li[data-site='hq']") or "")
