"""Wake the live dashboards from the database: on PostgreSQL, a statement-level trigger on each table the live
hub reads (``check_in``, ``check_in_conflict``, ``gate``, ``gate_alarm``, ``walkin``) sends
``NOTIFY vaora_live, '<table>'`` when a transaction that changed it commits. Every web process LISTENs
(:mod:`central.attendance.live_notify`) and reads the database at once instead of on its next poll, whichever
process (ingest, another web process, a CLI command) wrote. SQLite has no notifications: nothing changes there,
the hubs keep polling the shared file.
"""

from __future__ import annotations

from central.migrations import MigrationContext

CHANNEL = "vaora_live"
TABLES = ("check_in", "check_in_conflict", "gate", "gate_alarm", "walkin")


def up(ctx: MigrationContext) -> None:
    """Create ``vaora_live_notify()`` and one trigger per table (PostgreSQL only)."""
    if ctx.engine != "postgresql":
        return
    ctx.execute(
        "CREATE OR REPLACE FUNCTION vaora_live_notify() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$"
    )
    for table in TABLES:
        ctx.execute(f"CREATE TRIGGER {table}_live AFTER INSERT OR UPDATE OR DELETE ON {table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION vaora_live_notify()")
