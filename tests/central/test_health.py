"""``/healthz`` and ``/metrics`` as a monitoring system and an outsider would call them: the ingest beat's age
decides health on the app's clock, the answer names no internals, and metrics are refused to other machines
without the API token."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient

from central.core.beats import INGEST, record_beat
from central.core.db import database

from .conftest import API_TOKEN, Clock

OUTSIDE = {"REMOTE_ADDR": "203.0.113.7"}


def _beat(seconds_ago: float, clock: Clock) -> None:
    with database.connection_context():
        record_beat(INGEST, clock.now - timedelta(seconds=seconds_ago))


def test_health_follows_the_ingest_beat_on_the_apps_clock(client: FlaskClient, clock: Clock) -> None:
    assert client.get("/healthz").status_code == 503, "no beat yet"
    _beat(59, clock)
    fresh = client.get("/healthz", environ_base=OUTSIDE)
    assert fresh.status_code == 200, "no login and any address"
    assert fresh.get_json() == {"status": "ok", "checks": {"database": "ok", "ingest": "ok"}}
    assert fresh.headers["Cache-Control"] == "no-store"
    clock.now += timedelta(seconds=2)  # the beat is now 61 s old
    stale = client.get("/healthz")
    assert stale.status_code == 503
    assert stale.get_json() == {"status": "failing", "checks": {"database": "ok", "ingest": "failing"}}


def test_a_broken_database_fails_health_without_saying_why(client: FlaskClient, clock: Clock) -> None:
    _beat(1, clock)
    database.connect(reuse_if_open=True)
    database.execute_sql("DROP TABLE worker_beat")
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.get_json()["checks"]["ingest"] == "failing"
    assert "worker_beat" not in answer.get_data(as_text=True) and "Error" not in answer.get_data(as_text=True)


def test_metrics_are_for_this_machine_or_the_api_token(client: FlaskClient, clock: Clock) -> None:
    _beat(3, clock)
    assert client.get("/metrics", environ_base=OUTSIDE).status_code == 403
    wrong = client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 403
    scraped = client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert scraped.status_code == 200
    text = scraped.get_data(as_text=True)
    for family in ("vaora_checkins_stored_total", "vaora_ingest_lag_seconds", "vaora_outbound_jobs",
                   "vaora_gates", "vaora_http_request_duration_seconds_bucket"):
        assert f"\n{family}" in text or text.startswith(family) or f"# TYPE {family}" in text, family
    assert 'vaora_worker_beat_age_seconds{worker="ingest"} 3.0' in text
    assert client.get("/metrics").status_code == 200, "loopback needs no token"
