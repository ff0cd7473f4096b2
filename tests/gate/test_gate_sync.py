"""fetch_snapshot against a tiny local HTTP server: success, auth, unreachable, malformed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from central.devtools.ports import free_port
from gate.sync import SyncError, SyncFailure, fetch_snapshot
from protocols.payloads import encode
from tests.gate.gate_helpers import World


class Central(BaseHTTPRequestHandler):
    """Serves ``routes[path] = (status, body)`` to requests bearing the right token."""

    routes: ClassVar[dict[str, tuple[int, bytes]]] = {}
    token: ClassVar[str] = "s3cret"
    seen_auth: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen_auth.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            status, body = 401, b'{"error":"unauthorised"}'
        else:
            status, body = self.routes.get(self.path, (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def central() -> Iterator[str]:
    Central.routes = {}
    Central.seen_auth = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Central)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_fetches_and_validates_the_snapshot(central: str, world: World) -> None:
    Central.routes["/api/v1/gates/g1/snapshot"] = (200, encode(world.snapshot))
    snapshot = fetch_snapshot(central, "g1", "s3cret", timeout=5)
    assert snapshot == world.snapshot
    assert Central.seen_auth == ["Bearer s3cret"]


def test_wrong_token_is_unauthorised(central: str) -> None:
    with pytest.raises(SyncError) as info:
        fetch_snapshot(central, "g1", "wrong", timeout=5)
    assert info.value.reason is SyncFailure.UNAUTHORISED


def test_no_token_is_unauthorised_without_a_request(central: str) -> None:
    with pytest.raises(SyncError) as info:
        fetch_snapshot(central, "g1", None, timeout=5)
    assert info.value.reason is SyncFailure.UNAUTHORISED
    assert Central.seen_auth == []


def test_nobody_listening_is_unreachable() -> None:
    with pytest.raises(SyncError) as info:
        fetch_snapshot(f"http://127.0.0.1:{free_port()}", "g1", "s3cret", timeout=2)
    assert info.value.reason is SyncFailure.UNREACHABLE


def test_server_error_is_unreachable(central: str) -> None:
    Central.routes["/api/v1/gates/g1/snapshot"] = (503, b"busy")
    with pytest.raises(SyncError) as info:
        fetch_snapshot(central, "g1", "s3cret", timeout=5)
    assert info.value.reason is SyncFailure.UNREACHABLE


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[]", b'{"v": 1, "seq": -1}', b'{"v": 2}'])
def test_bad_body_is_malformed(central: str, body: bytes) -> None:
    Central.routes["/api/v1/gates/g1/snapshot"] = (200, body)
    with pytest.raises(SyncError) as info:
        fetch_snapshot(central, "g1", "s3cret", timeout=5)
    assert info.value.reason is SyncFailure.MALFORMED


def test_invalid_gate_id_is_refused_before_any_request(central: str) -> None:
    with pytest.raises(SyncError) as info:
        fetch_snapshot(central, "../admin", "s3cret", timeout=5)
    assert info.value.reason is SyncFailure.MALFORMED
    assert Central.seen_auth == []
