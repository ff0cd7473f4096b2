"""Add ``worker_beat``: each long-running worker's last sign of life, for ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext


class _WorkerBeat(peewee.Model):
    """The table as this migration creates it (frozen here; the model may change later)."""

    name = peewee.CharField(max_length=64, unique=True)
    beat_at = peewee.DateTimeField()
    detail = peewee.CharField(max_length=200, default="")

    class Meta:
        table_name = "worker_beat"
        legacy_table_names = False


def up(ctx: MigrationContext) -> None:
    """Create the table and its unique index."""
    with ctx.db.bind_ctx([_WorkerBeat]):
        ctx.db.create_tables([_WorkerBeat])
