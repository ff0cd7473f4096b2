"""``/healthz`` (no login) and ``/metrics`` (from the machine itself, or with the API token).

``/healthz`` answers 200 only while the database answers and the ingest worker's beat is fresh; otherwise 503.
Its body names each check as ``ok`` or ``failing`` and nothing more: no error text, versions or paths.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request

from central.api.helpers import bearer_token
from central.core.beats import INGEST, beat_age
from central.core.db import database
from central.web import ctx

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

INGEST_FRESH_S = 60.0
"""An ingest beat older than this fails /healthz (ingest beats every 10 s)."""


@bp.get("/healthz")
def healthz() -> Any:
    """200 while the database answers and ingest's beat is fresh; 503 otherwise."""
    passed = {"database": False, "ingest": False}
    try:
        database.execute_sql("SELECT 1")
        passed["database"] = True
        age = beat_age(INGEST, ctx().clock())
        passed["ingest"] = age is not None and age <= INGEST_FRESH_S
    except Exception:  # the reason goes to the log, never to the answer
        log.exception("health check failed")
    healthy = all(passed.values())
    response = jsonify({"status": _word(healthy), "checks": {name: _word(ok) for name, ok in passed.items()}})
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def _word(ok: bool) -> str:
    return "ok" if ok else "failing"


def _may_read_metrics() -> bool:
    address = request.remote_addr or ""
    try:
        if ipaddress.ip_address(address).is_loopback:
            return True
    except ValueError:
        pass
    token, given = ctx().config.api_token, bearer_token()
    return bool(token and given and hmac.compare_digest(given.encode(), token.encode()))


@bp.get("/metrics")
def metrics() -> Any:
    """Prometheus text: check-ins, ingest lag, worker beats, outbound queue, gates online, request latency."""
    from central.health.metrics import DatabaseCollector, render

    if not _may_read_metrics():
        return Response("forbidden\n", status=403, mimetype="text/plain")
    body = render(DatabaseCollector(ctx().clock))
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8", headers={"Cache-Control": "no-store"})


def init_request_timing(app: Flask) -> None:
    """Observe every request's duration in the latency histogram, labelled by route (not by raw path)."""
    from central.health.metrics import REQUEST_SECONDS

    @app.before_request
    def _start() -> None:
        g.vaora_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("vaora_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
            REQUEST_SECONDS.labels(route, request.method).observe(time.perf_counter() - started)
        return response
