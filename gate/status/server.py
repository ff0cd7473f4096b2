"""The guard's status page: a small stdlib HTTP server on the gate (no Flask, light enough for a Pi).

Routes:

- ``GET /`` the page (HTML with inline CSS/JS, no third-party assets), with the current state embedded.
- ``GET /api/status`` the state as JSON (:func:`gate.status.model.to_json`); 503 with ``{"ok": false,
  "reason": "internal_error", ...}`` when the source fails.
- ``GET /events`` Server-Sent Events: the JSON at connect and again whenever it changes (the source is polled
  every ``poll_interval`` seconds while a client is connected), a ``: keep-alive`` comment every
  ``keepalive`` seconds. At most ``max_clients`` streams at once; more get 503.
- ``GET /camera.jpg`` the camera's last frame as a small grayscale JPEG, only when the gate was given a
  ``snapshot`` provider (``[status] camera_snapshot = true``), else 404; a new picture at most every
  ``SNAPSHOT_MIN_INTERVAL_S`` seconds (a request sooner gets the same one), 503 when there is no frame yet.
  Never a stream: the guard asks for one picture to tell a dirty lens from an absent camera.

Binds to loopback by default; pass ``host="0.0.0.0"`` to serve the LAN. Exceptions from the source are logged
(once per failure spell) and shown on the page as an error state; nothing here raises into the gate except
``start()`` failing to bind (an ``OSError`` the caller should log).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from protocols.reasons import Reason

from .model import StatusSource, error_json, to_json
from .page import render_page

log = logging.getLogger(__name__)
SNAPSHOT_MIN_INTERVAL_S = 2.0

DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Feed:
    """The latest JSON text of the source, refreshed on demand; wakes waiting streams when it changes."""

    def __init__(self, source: StatusSource, clock: Callable[[], datetime]) -> None:
        self._source = source
        self._clock = clock
        self._lock = threading.Lock()
        self.changed = threading.Condition(threading.Lock())
        self.text = ""
        self.version = 0
        self._failing = False

    def refresh(self) -> tuple[int, str, bool]:
        """Read the source once; return ``(version, json_text, ok)``. Never raises."""
        with self._lock:
            ok = True
            try:
                data = to_json(self._source.status_view(), now=self._clock())
                if self._failing:
                    log.info("status source recovered")
                self._failing = False
            except Exception:
                ok = False
                if not self._failing:
                    log.exception("status source failed; the page shows an error state")
                else:
                    log.debug("status source still failing", exc_info=True)
                self._failing = True
                data = error_json(Reason.INTERNAL_ERROR)
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            with self.changed:
                if text != self.text:
                    self.text = text
                    self.version += 1
                    self.changed.notify_all()
                return self.version, self.text, ok

    def wake_all(self) -> None:
        """Wake every waiting stream (used on stop)."""
        with self.changed:
            self.changed.notify_all()


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that does not block on close and logs client disconnects quietly."""

    daemon_threads = True
    block_on_close = False
    status: StatusServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed request: client disconnects at debug level, anything else with its traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECTS):
            log.debug("status client %s went away: %r", client_address, exc)
        else:
            log.exception("status page request from %s failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    """Request handler for the three routes (HTTP/1.0: one request per connection)."""

    server: _HTTPServer
    server_version = "vaora-gate-status"
    timeout = 10  # seconds to read a request or to write to a stuck client

    def log_message(self, format: str, *args: Any) -> None:
        """Route the stdlib access log to debug level instead of stderr."""
        log.debug("status %s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        """Serve ``/``, ``/api/status`` and ``/events``."""
        path = self.path.split("?", 1)[0]
        status = self.server.status
        if path == "/":
            _version, text, _ok = status.feed.refresh()
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", render_page(text).encode("utf-8"))
        elif path == "/api/status":
            _version, text, ok = status.feed.refresh()
            code = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(code, "application/json; charset=utf-8", text.encode("utf-8"))
        elif path == "/events":
            self._events()
        elif path == "/camera.jpg" and status.snapshot is not None:
            picture = status.camera_picture()
            if picture is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                           "Chưa có hình / No frame yet\n".encode())
            else:
                self._send(HTTPStatus.OK, "image/jpeg", picture)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", "Không tìm thấy / Not found\n".encode())

    def _send(self, code: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if content_type.startswith("text/html"):
            self.send_header(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
                "img-src 'self'",
            )
        self.end_headers()
        self.wfile.write(body)

    def _events(self) -> None:
        status = self.server.status
        if not status.acquire_client():
            log.warning("status page: refusing a stream, %d clients already connected", status.max_clients)
            self.send_response(HTTPStatus.SERVICE_UNAVAILABLE)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Retry-After", "5")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self._stream(status)
        except DISCONNECTS as exc:
            log.debug("status stream to %s closed: %r", self.address_string(), exc)
        finally:
            status.release_client()
            self.close_connection = True

    def _stream(self, status: StatusServer) -> None:
        feed = status.feed
        version, text, _ok = feed.refresh()
        self._write(f"retry: {status.retry_ms}\n\n")
        self._write_data(text)
        last_sent = version
        while not status.stopping.is_set():
            with feed.changed:
                if feed.version == last_sent and not status.stopping.is_set():
                    feed.changed.wait(status.keepalive)
                version, text = feed.version, feed.text
            if status.stopping.is_set():
                return
            if version != last_sent:
                self._write_data(text)
                last_sent = version
            else:
                self._write(": keep-alive\n\n")

    def _write_data(self, text: str) -> None:
        lines = "".join(f"data: {line}\n" for line in text.split("\n"))
        self._write(f"event: status\n{lines}\n")

    def _write(self, chunk: str) -> None:
        self.wfile.write(chunk.encode("utf-8"))
        self.wfile.flush()


class StatusServer:
    """Serves the guard's status page for ``source`` on ``host``:``port`` from a background thread.

    ``port=0`` picks a free port; read ``.port`` / ``.url`` after ``start()``. ``poll_interval`` (seconds)
    is how often the source is read while a stream is open, ``keepalive`` how often an idle stream gets a
    comment, ``max_clients`` how many streams may be open at once, ``clock`` the aware UTC "now" used to
    decide whether shown times need their date.
    """

    def __init__(
        self,
        source: StatusSource,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        poll_interval: float = 0.25,
        keepalive: float = 15.0,
        max_clients: int = 16,
        retry_ms: int = 2000,
        clock: Callable[[], datetime] = _utcnow,
        snapshot: Callable[[], bytes | None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.poll_interval = poll_interval
        self.keepalive = keepalive
        self.max_clients = max_clients
        self.retry_ms = retry_ms
        self.feed = _Feed(source, clock)
        self.stopping = threading.Event()
        self._clients = 0
        self._clients_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.snapshot = snapshot
        self._monotonic = monotonic
        self._picture: tuple[float, bytes] | None = None
        self._picture_lock = threading.Lock()

    def camera_picture(self) -> bytes | None:
        """The camera's snapshot, taken anew at most every ``SNAPSHOT_MIN_INTERVAL_S`` seconds; None if none."""
        if self.snapshot is None:
            return None
        with self._picture_lock:
            now = self._monotonic()
            if self._picture is not None and now - self._picture[0] < SNAPSHOT_MIN_INTERVAL_S:
                return self._picture[1]
            try:
                picture = self.snapshot()
            except Exception:
                log.exception("camera snapshot failed")
                picture = None
            if picture is not None:
                self._picture = (now, picture)
            return picture

    @property
    def url(self) -> str:
        """Base URL of the page, e.g. ``http://127.0.0.1:8080/`` (the actual port after ``start()``)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        """How many event streams are open now."""
        with self._clients_lock:
            return self._clients

    def acquire_client(self) -> bool:
        """Count a new stream in; False when ``max_clients`` are already open."""
        with self._clients_lock:
            if self._clients >= self.max_clients:
                return False
            self._clients += 1
            return True

    def release_client(self) -> None:
        """Count a closed stream out."""
        with self._clients_lock:
            self._clients = max(0, self._clients - 1)

    def start(self) -> StatusServer:
        """Bind and serve in background threads; returns self. Raises ``OSError`` if the port cannot be bound."""
        if self._httpd is not None:
            return self
        self.stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.status = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._threads = [
            threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="status-http", daemon=True
            ),
            threading.Thread(target=self._poll, name="status-poll", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("status page listening on %s", self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close all streams, stop serving and release the port. Safe to call twice or before ``start()``."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()
        self.feed.wake_all()
        httpd.shutdown()
        httpd.server_close()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        log.info("status page stopped")

    def _poll(self) -> None:
        """Read the source every ``poll_interval`` while at least one stream is open."""
        while not self.stopping.wait(self.poll_interval):
            if self.clients:
                self.feed.refresh()

    def __enter__(self) -> StatusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_status_server(source: StatusSource, listen: str, port: int,
                        snapshot: Callable[[], bytes | None] | None = None) -> StatusServer | None:
    """Start the guard's page for ``source``, or log why it cannot listen and return None: a status page that
    cannot listen must not keep the turnstile down. ``snapshot``: the camera's picture on demand, if allowed."""
    try:
        return StatusServer(source, listen, port, snapshot=snapshot).start()
    except Exception as exc:
        log.error("status page not started listen=%s port=%d: %s", listen, port, exc)
        return None
