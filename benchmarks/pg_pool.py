"""Mean request cost on PostgreSQL with a connection per request against pooled connections, in the same run.

Central opens the database per request and closes it after; with ``postgresql://`` that is a new PostgreSQL
connection each time, with ``postgresql+pool://`` a connection handed back to the pool. Both variants serve the
same requests to the same app code through Flask's test client (no HTTP in between, so the figure is the app's):
an authenticated JSON list of meetings, and ``/healthz``.

    python benchmarks/pg_pool.py [--requests 2000] [--admin postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from psycopg import sql

from benchmarks._gate_fixture import header
from central.app import create_app
from central.core.db import database, open_database
from central.migrations import migrate

TOKEN = "bench-token-0123456789abcdef"
ROUTES = ("/api/v1/meetings", "/healthz")


def measure(url: str, requests: int, tmp: Path) -> dict[str, float]:
    """Mean and p95 milliseconds per request for each route, on an app opened at ``url``."""
    app = create_app({"VAORA_DATABASE_URL": url, "VAORA_API_TOKEN": TOKEN, "VAORA_DATA_DIR": str(tmp / "data"),
                      "VAORA_SIGNING_KEY_FILE": str(tmp / "key.pem"), "TESTING": True})
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    figures: dict[str, float] = {}
    for route in ROUTES:
        for _ in range(50):  # warm up (imports, first connection, templates)
            client.get(route, headers=auth)
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            answer = client.get(route, headers=auth)
            samples.append((time.perf_counter() - started) * 1000)
            if answer.status_code not in (200, 503):
                raise SystemExit(f"{route}: HTTP {answer.status_code}")
        figures[f"{route} mean"] = statistics.fmean(samples)
        figures[f"{route} p95"] = sorted(samples)[int(len(samples) * 0.95)]
    if not database.is_closed():
        database.close()
    if hasattr(database.obj, "close_all"):  # the pool's idle connections
        database.obj.close_all()
    return figures


def main() -> int:
    """Create a throwaway database, run both variants, print a Markdown block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"vaora_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.admin, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = args.admin.rsplit("/", 1)[0].split("://", 1)[1]
    plain, pooled = f"postgresql://{base}/{name}", f"postgresql+pool://{base}/{name}"
    try:
        open_database(plain)
        migrate()
        database.close()
        with tempfile.TemporaryDirectory() as tmp:
            results = {"connection per request (postgresql://)": measure(plain, args.requests, Path(tmp)),
                       "pooled (postgresql+pool://, VAORA_DB_POOL_SIZE=16)": measure(pooled, args.requests,
                                                                                     Path(tmp))}
    finally:
        with psycopg.connect(args.admin, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    print("```markdown")
    print("\n".join(header("Central request cost on PostgreSQL, with and without pooling", None)))
    print(f"- {args.requests} requests per route and variant, one thread, Flask test client, PostgreSQL on 127.0.0.1")
    print()
    print("| variant | " + " | ".join(f"{r} mean (ms) | {r} p95 (ms)" for r in ROUTES) + " |")
    print("| --- |" + " ---: |" * (2 * len(ROUTES)))
    for variant, figures in results.items():
        cells = " | ".join(f"{figures[f'{r} mean']:.2f} | {figures[f'{r} p95']:.2f}" for r in ROUTES)
        print(f"| {variant} | {cells} |")
    first, second = results.values()
    print()
    for route in ROUTES:
        print(f"- {route}: pooled costs {second[f'{route} mean'] / first[f'{route} mean']:.2f}x of per-request "
              f"connections (mean {first[f'{route} mean']:.2f} → {second[f'{route} mean']:.2f} ms)")
    print("```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
