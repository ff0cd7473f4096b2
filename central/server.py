"""``vaora-central serve``: the web app under gunicorn (gthread workers), configured from ``VAORA_WEB_*``.

- ``VAORA_WEB_WORKERS`` processes, each with ``VAORA_WEB_THREADS`` threads. A live dashboard holds one thread
  for its server-sent event stream; each process takes at most ``VAORA_WEB_STREAMS`` streams (default 7/8 of
  its threads) and answers 503 with ``Retry-After`` beyond that, so open dashboards never take the threads
  that pages, the API and gates' snapshots need.
- SIGTERM: gunicorn stops accepting, every live stream of the worker is ended at once (the browsers reconnect
  to the next server), in-flight requests finish within ``GRACEFUL_TIMEOUT_S``.
- Logging is set up exactly like the other commands (``protocols.logs``); gunicorn's own and its access log go
  through it, secrets in queries, Referers and headers redacted.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from central.config import CentralConfig
from protocols.logs import RedactSecrets

log = logging.getLogger(__name__)

GRACEFUL_TIMEOUT_S = 4
"""Seconds a stopping worker gives in-flight requests (SIGTERM drains in under 5 s)."""


def gunicorn_options(config: CentralConfig, *, host: str | None = None, port: int | None = None) -> dict[str, Any]:
    """The gunicorn settings for ``config`` (``host``/``port`` override ``VAORA_WEB_HOST``/``_PORT``)."""
    return {
        "bind": f"{host or config.web_host}:{port or config.web_port}",
        "workers": config.web_workers,
        "worker_class": "gthread",
        "threads": config.web_threads,
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        "timeout": 60,
        "keepalive": 5,
        "proc_name": "vaora-central",
        "control_socket_disable": True,  # (gunicorn 24+ would put one in $HOME; systemd manages the process)
        "accesslog": "-",
        "errorlog": "-",
        "logger_class": CentralLogs,
        "forwarded_allow_ips": "127.0.0.1,::1",
        "post_worker_init": _end_streams_on_sigterm,
    }


class CentralLogs(glogging.Logger):  # gunicorn ships no types
    """gunicorn's error and access logs, sent to the root logger (set up by ``protocols.logs``), their
    secrets redacted (an access line holds the request's query and Referer: ``?s=<invitation secret>``)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True
            if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
                logger.addFilter(RedactSecrets())


def _end_streams_on_sigterm(worker: Any) -> None:
    """In each worker: on SIGTERM, end the live streams too (else they would hold the worker to its timeout)."""
    previous = signal.getsignal(signal.SIGTERM)
    app: Flask = worker.wsgi  # gunicorn loads the app before post_worker_init

    def on_sigterm(signum: int, frame: Any) -> None:
        hub = app.extensions.get("vaora_live")
        if hub is not None:
            threading.Thread(target=hub.stop, name="live-stop", daemon=True).start()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def _share_a_session_key() -> Path:
    """No VAORA_SECRET_KEY_FILE: make one random key for every worker of this run (a session signed by one
    worker must be valid in the others); sessions still end when the server restarts. Returns the key's
    private folder, which the server removes when it stops."""
    folder = Path(tempfile.mkdtemp(prefix="vaora-central-"))
    key_file = folder / "secret-key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(48))
    os.environ["VAORA_SECRET_KEY_FILE"] = str(key_file)
    log.warning("no VAORA_SECRET_KEY_FILE: one random session key for this run's workers; sessions end when "
                "central restarts")
    return folder


class CentralServer(BaseApplication):  # gunicorn ships no types
    """gunicorn with central's app and options, without a gunicorn config file or command line."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build the app in each worker (after the fork: its own connections and threads)."""
        from central.wsgi import build_app

        return build_app(configure_logs=False)


def serve(config: CentralConfig, *, host: str | None = None, port: int | None = None) -> int:
    """Run gunicorn until it is stopped; returns the exit code."""
    from central.core.db import database, open_database
    from central.migrations import SchemaOutOfDateError, require_current

    open_database(config.database_url, pool_size=config.db_pool_size)
    try:
        require_current()
    except SchemaOutOfDateError as exc:
        log.error("refused to serve: %s", exc)
        return 2
    finally:
        database.close()
    # Mail and SMS leave through the delivery units (vaora-central deliver), not a thread in every web worker.
    os.environ.setdefault("VAORA_MAIL_WORKER", "0")
    key_folder = _share_a_session_key() if config.secret_key is None else None
    options = gunicorn_options(config, host=host, port=port)
    log.info("serving bind=%s workers=%d threads=%d streams=%d", options["bind"], config.web_workers,
             config.web_threads, config.web_streams)
    arbiter = os.getpid()
    try:
        CentralServer(options).run()
    finally:
        # gunicorn's forked workers leave through here too (SystemExit): only the arbiter, at the very end,
        # removes the key that a worker started later would still need.
        if key_folder is not None and os.getpid() == arbiter:
            shutil.rmtree(key_folder, ignore_errors=True)
    return 0
