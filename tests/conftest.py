"""Shared fixtures that run real components: a private Mosquitto, an SMTP catcher and a fresh database.

- ``broker``: a started ``LocalBroker`` (own config, free port, persistence) in ``tmp_path``.
- ``broker_factory``: ``make(**LocalBroker kwargs) -> LocalBroker``, started; for several brokers or ACLs.
- ``mail``: a started ``MailCatcher``.
- ``wait_until(predicate, timeout=...)``: the one polling helper; waits on a condition, never on the clock
  alone. Its timeouts, and every process start-up wait, are multiplied by ``VAORA_TEST_TIMEOUT_SCALE``
  (:func:`scaled`, defined once in ``devtools.timeouts`` and re-exported here) so a loaded machine gets more
  time without any test changing.
- pytest-timeout's default ceiling per test is scaled the same way (``pytest_collection_modifyitems``).
- ``database_url``: runs the test twice, on SQLite (a file in ``tmp_path``) and on PostgreSQL (a fresh
  database on 127.0.0.1:5432, dropped afterwards). Without a reachable PostgreSQL the postgres run is
  skipped, unless ``VAORA_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), in which case it fails. The schema is
  built by central's migrations; ``empty_database_url`` is the same without it.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.broker import LocalBroker
from devtools.mailcatcher import MailCatcher
from devtools.redis_server import LocalRedis, find_redis_server
from devtools.timeouts import scaled

pytest_plugins = ["pytester"]

def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01,
               message: str | Callable[[], str] = "") -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; fail the test after ``timeout``
    (scaled) seconds with ``message`` (a string or a callable giving one, e.g. a log tail).

    The timeout is only a ceiling for a broken run: a passing test returns as soon as the condition holds, so
    ceilings are generous and nothing here asserts how long a wait took.
    """
    deadline = time.monotonic() + scaled(timeout)
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = message() if callable(message) else message
            pytest.fail(f"condition not met within {scaled(timeout):.1f} s" + (f": {detail}" if detail else ""))
        time.sleep(interval)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stretch pytest-timeout's per-test ceiling (``timeout`` in pyproject.toml) with the same scale, for tests
    that set none of their own (theirs use ``scaled`` already)."""
    try:
        ceiling = float(config.getini("timeout") or 0)
    except (ValueError, TypeError):
        return
    if ceiling <= 0:
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(scaled(ceiling)))


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs a command in-process (``configure_logging``) points the root logger at that test's
    captured stdout; put the previous handlers back, so later threads (a mail catcher's, a broker client's)
    never write to a closed stream ("--- Logging error ---" in CI's output)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _gates_stopped(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every gate a test starts is stopped when the test ends (``Gate.stop`` is idempotent, so a test's own
    teardown may stop it first). A forgotten gate's threads outlive its store ("heartbeat failed ... closed
    database" every interval) and log tracebacks from their thread; on CPython 3.11 formatting a traceback calls
    ``ast.parse``, whose constructor state is shared by all threads, and a concurrent ``ast.parse`` in the test's
    thread (pytest rewriting a module imported mid-run, a layout test) then fails with "AST constructor
    recursion depth mismatch"."""
    from gate.app import Gate

    started: list[Gate] = []
    start = Gate.start

    def tracked_start(self: Gate, *args: Any, **kwargs: Any) -> Any:
        started.append(self)
        return start(self, *args, **kwargs)

    monkeypatch.setattr(Gate, "start", tracked_start)
    yield
    for gate in started:
        gate.stop()



@pytest.fixture(autouse=True)
def _live_hubs_stopped(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every live-attendance hub a test starts (its poller and, on PostgreSQL, its LISTEN thread) is stopped when
    the test ends (``LiveHub.stop`` is idempotent). An app built by a test and left running kept its listener
    reconnecting to the test's dropped database, logging a traceback on each try; a later test's ``ast.parse``
    (werkzeug compiling a route) then raced it: "AST constructor recursion depth mismatch" (see
    :func:`_gates_stopped`; seen in a clean-clone run on 2026-12-07)."""
    from central.attendance.live import LiveHub

    started: list[LiveHub] = []
    ensure_started = LiveHub.ensure_started

    def tracked(self: LiveHub) -> None:
        if self not in started:
            started.append(self)
        ensure_started(self)

    monkeypatch.setattr(LiveHub, "ensure_started", tracked)
    yield
    for hub in started:
        hub.stop()

POSTGRES_HOST = os.environ.get("VAORA_PG_HOST", "127.0.0.1")
POSTGRES_USER = "postgres"
POSTGRES_ADMIN_DB = "postgres"


def _postgres_port() -> int:
    return int(os.environ.get("VAORA_PG_PORT", "5432"))


def _stop_broker(broker: LocalBroker) -> None:
    try:
        broker.stop(timeout=10)  # LocalBroker scales its own timeouts
    finally:
        broker.kill()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., LocalBroker]]:
    """Return ``make(**kwargs)`` that starts a ``LocalBroker`` in its own directory under ``tmp_path``.

    Every broker made is stopped (then killed if needed) at teardown.
    """
    made: list[LocalBroker] = []

    def make(**kwargs: Any) -> LocalBroker:
        directory = kwargs.pop("directory", tmp_path / f"mosquitto-{len(made)}")
        broker = LocalBroker(directory, **kwargs)
        made.append(broker)
        return broker.start()

    yield make
    for broker in made:
        _stop_broker(broker)


@pytest.fixture
def broker(broker_factory: Callable[..., LocalBroker]) -> LocalBroker:
    """A started private Mosquitto on 127.0.0.1 and a free port, anonymous access allowed."""
    return broker_factory()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """The URL of a private ``redis-server`` started for this test (free port, no persistence); skipped when
    Debian's redis-server is not installed."""
    if find_redis_server() is None:
        pytest.skip("redis-server is not installed (scripts/bootstrap.sh installs it)")
    server = LocalRedis(tmp_path / "redis").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def mail() -> Iterator[MailCatcher]:
    """A started SMTP catcher on 127.0.0.1 and a free port; ``mail.wait_for(n)`` returns the messages."""
    catcher = MailCatcher().start()
    try:
        yield catcher
    finally:
        catcher.stop()


def _admin_connection() -> Any:
    import psycopg

    return psycopg.connect(
        host=POSTGRES_HOST,
        port=_postgres_port(),
        user=POSTGRES_USER,
        dbname=POSTGRES_ADMIN_DB,
        connect_timeout=max(1, round(scaled(3))),
        autocommit=True,
    )


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL at {POSTGRES_HOST}:{_postgres_port()} unavailable: {reason}"
    if os.environ.get("VAORA_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{message} (VAORA_REQUIRE_POSTGRES=1, so this fails instead of skipping)")
    pytest.skip(message)


def require_postgres() -> None:
    """Skip the calling test (fail it under ``VAORA_REQUIRE_POSTGRES=1``) unless the test PostgreSQL answers: for
    tests that reach it through a subprocess (the benchmarks' tiny runs) rather than a database fixture."""
    try:
        _admin_connection().close()
    except Exception as error:  # any failure to reach it means: no PostgreSQL here
        _postgres_unavailable(str(error).strip().splitlines()[0] if str(error).strip() else repr(error))


def _drop_database(name: str) -> None:
    from psycopg import sql

    with _admin_connection() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database for ``playhouse.db_url.connect`` / central's config, once per backend (sqlite,
    postgres)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/central.db"
        return
    try:
        import psycopg
        from psycopg import sql
    except ImportError as error:
        _postgres_unavailable(f"psycopg is not installed ({error})")
    name = f"vaora_t_{secrets.token_hex(6)}"
    try:
        with _admin_connection() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as error:
        _postgres_unavailable(str(error).strip().splitlines()[0] if str(error).strip() else repr(error))
    try:
        yield f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{_postgres_port()}/{name}"
    finally:
        _drop_database(name)


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """The same, with central's schema built by its migrations (``vaora-central init-db``), as in production."""
    from central.core.db import database, open_database
    from central.migrations import migrate

    open_database(empty_database_url)
    migrate()
    database.close()
    return empty_database_url


# ----- shared by the browser and end-to-end tests -------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium, driven by Playwright (``playwright install`` cannot download browsers here)."""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class WatchedBrowser:
    """A Playwright browser whose every page reports Content Security Policy violations and uncaught script
    errors into :attr:`problems` (the ``browser`` fixture fails the test on any)."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser
        self.problems: list[str] = []

    def _watch(self, page: Any) -> None:
        def on_console(message: Any) -> None:
            if "Content Security Policy" in message.text:
                self.problems.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: uncaught {error}"))

    def new_context(self, **options: Any) -> Any:
        """``Browser.new_context``, every page of it watched."""
        context = self._browser.new_context(**options)
        context.on("page", self._watch)
        return context

    def new_page(self, **options: Any) -> Any:
        """``Browser.new_page``, watched (and any page it opens)."""
        page = self._browser.new_page(**options)
        self._watch(page)
        page.context.on("page", self._watch)
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium; the test fails if a page breaks the Content Security Policy or throws."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        watched = WatchedBrowser(instance)
        yield watched
        instance.close()
        assert not watched.problems, "\n".join(watched.problems)


@pytest.fixture
def scanner_pty() -> Iterator[tuple[int, str]]:
    """A pseudo-terminal pair: the gate opens the slave as its serial scanner; the test types on the master."""
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


class ThreadedServer:
    """A WSGI app on a threaded werkzeug server in a thread (like ``vaora-central serve``)."""

    def __init__(self, app: Any) -> None:
        import threading

        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=scaled(10))
        # The app's live-attendance poller would otherwise go on polling whatever database the next test opens
        # (peewee's database is one proxy per process), holding read locks under that test's writers.
        hub = getattr(self.server.app, "extensions", {}).get("vaora_live")
        if hub is not None:
            hub.stop()
