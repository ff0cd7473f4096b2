"""Central's Prometheus metrics (prometheus-client): read from the database at each scrape, plus the request
latency histogram every web process observes.

Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` (the web unit does) so the histogram is
summed over every worker; the database figures are the same whichever worker answers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import peewee
from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from central.core.beats import DELIVER_PREFIX, INGEST, beat_age
from central.core.db import database, tuples
from central.core.states import GateLinkState, SiteLinkState
from central.gates.models import CheckIn, Gate, SiteLink
from central.outbound.models import MailJob

LAG_WINDOW = timedelta(minutes=5)
LAG_SAMPLE = 1000
"""The newest check-ins the lag is averaged over."""

REQUEST_SECONDS = Histogram(
    "vaora_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method (streams: until the response started)",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class DatabaseCollector(Collector):
    """Figures read from the database when Prometheus scrapes; ``clock`` returns aware UTC now."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now: datetime = self.clock()
        with database.connection_context():
            stored = CounterMetricFamily("vaora_checkins_stored", "Check-ins stored at central (all gates)")
            stored.add_metric([], CheckIn.select().count())
            yield stored

            recent = (CheckIn.select(CheckIn.scanned_at, CheckIn.received_at)
                      .where(CheckIn.received_at >= now - LAG_WINDOW)
                      .order_by(CheckIn.received_at.desc()).limit(LAG_SAMPLE))
            lags = [(row.received_at - row.scanned_at).total_seconds() for row in recent]
            lag_metric = GaugeMetricFamily(
                "vaora_ingest_lag_seconds", "Mean time from a gate's scan to its storage at central, last 5 min")
            lag_metric.add_metric([], sum(lags) / len(lags) if lags else 0.0)
            yield lag_metric

            beats = GaugeMetricFamily("vaora_worker_beat_age_seconds", "Seconds since a worker's last sign of life",
                                      labels=["worker"])
            for worker in (INGEST, DELIVER_PREFIX):
                age = beat_age(worker, now)
                beats.add_metric([worker], float("inf") if age is None else age)
            yield beats

            jobs = GaugeMetricFamily("vaora_outbound_jobs", "Outbound e-mail and SMS jobs by kind and state "
                                     "(queued = queue depth; failed = given up)", labels=["kind", "state"])
            query = (MailJob.select(MailJob.kind, MailJob.status, peewee.fn.COUNT(MailJob.id))
                     .group_by(MailJob.kind, MailJob.status))
            for row in tuples(query):
                jobs.add_metric([str(row[0]), str(row[1])], int(row[2]))
            yield jobs

            gates = GaugeMetricFamily("vaora_gates", "Registered gates by link state", labels=["state"])
            online = Gate.select().where(Gate.state == GateLinkState.ONLINE).count()
            gates.add_metric(["online"], online)
            gates.add_metric(["other"], Gate.select().count() - online)
            yield gates

            links = GaugeMetricFamily("vaora_site_link_up", "1 while a site broker's bridge to the core is "
                                      "connected, 0 while it is down or has never connected (site offline)",
                                      labels=["site"])
            for site_id, state in tuples(SiteLink.select(SiteLink.site_id, SiteLink.state).order_by(SiteLink.site_id)):
                links.add_metric([str(site_id)], 1.0 if state == SiteLinkState.CONNECTED else 0.0)
            yield links

            offsets = GaugeMetricFamily("vaora_gate_clock_offset_seconds", "Central's clock minus the gate's, "
                                        "measured from the gate's last heartbeat", labels=["gate"])
            for gate_id, offset in tuples(Gate.select(Gate.gate_id, Gate.clock_offset_s)
                                          .where(Gate.clock_offset_s.is_null(False)).order_by(Gate.gate_id)):
                offsets.add_metric([str(gate_id)], float(offset))
            yield offsets


def render(collector: DatabaseCollector) -> bytes:
    """The Prometheus text exposition of every metric."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
    registry.register(collector)
    return generate_latest(registry)
