"""fetch_snapshot against a tiny local HTTP server: success, auth, unreachable, malformed; the streamed
(NDJSON) snapshot loaded entry by entry into a real cache, and every way a stream can be bad refused with a
reason while the cache keeps what it had."""

from __future__ import annotations

import logging
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from gpiozero.pins.mock import MockFactory

from devtools.ports import free_port
from gate.app import Gate
from gate.config import GateConfig
from gate.follow import ChangeFollower
from gate.scanners import ScanEvent
from gate.store import GateStore
from gate.sync import SnapshotStream, SyncError, SyncFailure, fetch_snapshot
from protocols.codes import compact_hash, generate_compact
from protocols.payloads import (
    SNAPSHOT_STREAM_MEDIA_TYPE,
    DelegateEntry,
    Snapshot,
    encode,
    encode_snapshot_stream,
)
from protocols.reasons import Reason
from tests.gate.gate_helpers import NOW, FakeTransport, IdleScanner, World, build_world

STREAM = SNAPSHOT_STREAM_MEDIA_TYPE
PATH = "/api/v1/gates/g1/snapshot"


class Central(BaseHTTPRequestHandler):
    """Serves ``routes[path] = (status, body)`` to requests bearing the right token."""

    routes: ClassVar[dict[str, tuple[int, bytes]]] = {}
    content_type: ClassVar[str] = "application/json"
    token: ClassVar[str] = "s3cret"
    seen_auth: ClassVar[list[str | None]] = []
    seen_accept: ClassVar[list[str | None]] = []
    seen_features: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen_auth.append(self.headers.get("Authorization"))
        self.seen_features.append(self.headers.get("X-Vaora-Snapshot-Features"))
        self.seen_accept.append(self.headers.get("Accept"))
        content_type = self.content_type
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            status, body, content_type = 401, b'{"error":"unauthorised"}', "application/json"
        else:
            status, body = self.routes.get(self.path, (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def central() -> Iterator[str]:
    Central.routes = {}
    Central.seen_auth = []
    Central.seen_accept = []
    Central.seen_features = []
    Central.content_type = "application/json"
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
    assert Central.seen_features == ["meeting-sites"], "the gate says it reads meetings' sites (remote points)"


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


# ----- the streamed snapshot (application/x-ndjson) ---------------------------------------------------------


def stream_lines(snapshot: Snapshot) -> list[bytes]:
    """The snapshot as central streams it: header, meetings, delegates, keys, end (without newlines)."""
    return [line.rstrip(b"\n") for line in encode_snapshot_stream(snapshot)]


def serve_stream(lines: list[bytes]) -> None:
    Central.content_type = STREAM
    Central.routes[PATH] = (200, b"".join(line + b"\n" for line in lines))


@pytest.fixture
def cache(tmp_path: Path, world: World) -> Iterator[GateStore]:
    """A cache already holding ``world``'s snapshot (seq 42), as a gate that synced earlier."""
    cache = GateStore(tmp_path / "gate")
    cache.load_snapshot(world.snapshot, NOW)
    yield cache
    cache.close()


def test_streamed_snapshot_is_asked_for_and_loaded_entry_by_entry(central: str, cache: GateStore) -> None:
    newer = build_world(5)
    snapshot = newer.snapshot.model_copy(update={"seq": 60})
    serve_stream(stream_lines(snapshot))
    stream = fetch_snapshot(central, "g1", "s3cret", timeout=5)
    assert isinstance(stream, SnapshotStream)
    assert STREAM in (Central.seen_accept[0] or "")
    assert stream.seq == 60 and stream.header.delegates == len(snapshot.delegates)
    cache.load_snapshot(stream, NOW + timedelta(minutes=1))
    assert cache.seq == 60 and cache.synced_at == NOW + timedelta(minutes=1)
    assert cache.delegate_count() == len(snapshot.delegates)
    for did, code in newer.codes.items():
        found = cache.lookup_code_hash(compact_hash(code))
        assert found is not None and found.id == did
    assert cache.delegate(1, 9001).revoked is True  # type: ignore[union-attr]
    assert cache.meeting(4).site_id == "other"  # type: ignore[union-attr]
    assert set(cache.public_keys()) == {7}
    with pytest.raises(RuntimeError):
        list(stream.entries())  # read once
    assert cache.staging_files() == []


def _bad_delegate(lines: list[bytes]) -> list[bytes]:
    bad = lines.copy()
    bad[6] = bad[6].replace(b'"code_hash":"', b'"code_hash":"XYZ')
    return bad


def _long_line(lines: list[bytes]) -> list[bytes]:
    bad = lines.copy()
    bad[6] = bad[6].replace(b'"name":"', b'"name":"' + b"A" * 20_000)
    return bad


BAD_STREAMS: dict[str, tuple[Callable[[list[bytes]], list[bytes]], str]] = {
    "a bad entry half-way": (_bad_delegate, "line 7 (delegate 2 of"),
    "an entry of the wrong kind": (lambda ls: [*ls[:6], ls[1], *ls[7:]], "line 7 (delegate 2 of"),
    "cut off before the end line": (lambda ls: ls[:-1], "cut off"),
    "cut off half-way": (lambda ls: ls[:8], "cut off after line 8"),
    "an end line for another seq": (lambda ls: [*ls[:-1], b'{"v":1,"end":"snapshot","seq":41}'], "end line seq 41"),
    "data after the end line": (lambda ls: [*ls, ls[6]], "after the end line"),
    "a line over 16 KiB": (_long_line, "longer than"),
}


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
def test_a_bad_stream_is_refused_with_a_reason_and_changes_nothing(central: str, cache: GateStore,
                                                                   world: World, case: str) -> None:
    spoil, expected = BAD_STREAMS[case]
    other = build_world(5)
    serve_stream(spoil(stream_lines(other.snapshot.model_copy(update={"seq": 60}))))
    stream = fetch_snapshot(central, "g1", "s3cret", timeout=5)
    with pytest.raises(SyncError) as info:
        cache.load_snapshot(stream, NOW + timedelta(minutes=1))
    assert info.value.reason is SyncFailure.MALFORMED
    assert expected in info.value.detail
    # The cache still holds the previous snapshot, whole.
    assert cache.seq == 42 and cache.synced_at == NOW
    assert cache.delegate_count() == len(world.snapshot.delegates)
    assert cache.lookup_code_hash(compact_hash(world.codes[1])) is not None
    assert cache.lookup_code_hash(compact_hash(other.codes[1])) is None
    assert cache.staging_files() == []


@pytest.mark.parametrize("header", [b"", b"not json", b'{"v": 2, "seq": 1}', b'{"v": 1, "seq": -1}'])
def test_a_bad_header_is_refused_at_fetch(central: str, header: bytes) -> None:
    serve_stream([header, b'{"v":1,"end":"snapshot","seq":1}'] if header else [])
    with pytest.raises(SyncError) as info:
        fetch_snapshot(central, "g1", "s3cret", timeout=5)
    assert info.value.reason is SyncFailure.MALFORMED


def test_follower_keeps_a_newer_cache_and_closes_an_older_stream(central: str, cache: GateStore,
                                                                 world: World) -> None:
    serve_stream(stream_lines(build_world(2).snapshot.model_copy(update={"seq": 10})))
    follower = ChangeFollower(cache, lambda: None, clock=lambda: NOW)
    with fetch_snapshot(central, "g1", "s3cret", timeout=5) as stream:
        assert not follower.load_snapshot(stream)
    assert cache.seq == 42 and cache.lookup_code_hash(compact_hash(world.codes[1])) is not None


def test_streamed_load_never_holds_the_whole_snapshot(central: str, tmp_path: Path) -> None:
    """20,000 delegates: the streamed load's Python heap peak is a small fraction of decoding them at once."""
    base = build_world(1)
    delegates = [
        DelegateEntry(id=100_000 + i, meeting_id=1, name=f"Đại biểu {i}", organisation="UBND quận",
                      position="Chuyên viên", code_hash=compact_hash(generate_compact()),
                      valid_from=NOW - timedelta(hours=1), valid_until=NOW + timedelta(hours=3))
        for i in range(20_000)
    ]
    snapshot = base.snapshot.model_copy(update={"delegates": delegates})
    serve_stream(stream_lines(snapshot))
    whole_json = encode(snapshot)
    del delegates, snapshot
    cache = GateStore(tmp_path / "big")
    tracemalloc.start()
    try:
        Snapshot.model_validate_json(whole_json)  # what decoding it whole costs (the result is dropped)
        whole_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        cache.load_snapshot(fetch_snapshot(central, "g1", "s3cret", timeout=5), NOW)
        streamed_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert cache.delegate_count() == 20_000
    assert streamed_peak < whole_peak / 4, (streamed_peak, whole_peak)
    assert streamed_peak < 8 * 2**20, f"streamed load peaked at {streamed_peak / 2**20:.1f} MiB"
    cache.close()


def test_gate_refresh_refuses_a_bad_stream_and_keeps_deciding_from_its_cache(
    central: str, world: World, make_config: Callable[..., GateConfig], caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(central={"url": central, "token": "s3cret", "timeout": 5})
    seed = GateStore(config.gate.data_dir)  # synced earlier
    seed.load_snapshot(world.snapshot, NOW)
    seed.close()
    newer = build_world(3)
    serve_stream(_bad_delegate(stream_lines(newer.snapshot.model_copy(update={"seq": 60}))))
    gate = Gate(config, pin_factory=MockFactory(), scanner=IdleScanner(), transport=FakeTransport(),
                clock=lambda: NOW, delivery_poll_s=0.05, flush_timeout=0.1, resync_backoff_s=30)
    try:
        with caplog.at_level(logging.WARNING, logger="gate.app"):
            gate.start()  # fetches the stream at start-up: refused half-way
        assert gate.cache is not None and gate.cache.seq == 42
        assert "snapshot not loaded reason=malformed" in caplog.text and "line 7 (delegate 2 of" in caplog.text
        decision, _ = gate.handle_scan(ScanEvent(world.codes[1], Reason.OK, "test", 0.0))
        assert decision.allowed, "still decides from the cache it had"
        serve_stream(stream_lines(newer.snapshot.model_copy(update={"seq": 60})))
        assert gate.refresh_snapshot()
        assert gate.cache.seq == 60
        assert not gate.handle_scan(ScanEvent(world.codes[2], Reason.OK, "test", 0.0))[0].allowed
        assert gate.handle_scan(ScanEvent(newer.codes[2], Reason.OK, "test", 0.0))[0].allowed
    finally:
        gate.stop()
