"""Record gate clocks: each gate's last measured clock offset, and each check-in's raw gate time and correction.

- ``gate.clock_offset_s`` (float, null): central's clock minus the gate's, measured from its last heartbeat;
  ``gate.clock_reported_offset_s`` (float, null): the offset the gate estimated itself; ``gate.clock_suspect``
  (bool, default false): the gate's clock is absurd (years off); ``gate.measures_clock`` (bool, default false): its
  heartbeats carry ``clock_offset_s``, so it understands the clock fields of acks and commands.
- ``check_in.gate_scanned_at`` (datetime, null): the gate's own time of the scan (``scanned_at`` becomes central's
  time); ``check_in.clock_offset_s`` (float, null): the correction applied; ``check_in.clock_suspect`` (bool,
  default false). Rows stored before keep their times as they came (null raw time, no correction).
"""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext


def up(ctx: MigrationContext) -> None:
    """Add the four columns of ``gate`` and the three of ``check_in``."""
    migrator = ctx.migrator
    for table, column, field in (
        ("gate", "clock_offset_s", peewee.FloatField(null=True)),
        ("gate", "clock_reported_offset_s", peewee.FloatField(null=True)),
        ("gate", "clock_suspect", peewee.BooleanField(default=False)),
        ("gate", "measures_clock", peewee.BooleanField(default=False)),
        ("check_in", "gate_scanned_at", peewee.DateTimeField(null=True)),
        ("check_in", "clock_offset_s", peewee.FloatField(null=True)),
        ("check_in", "clock_suspect", peewee.BooleanField(default=False)),
    ):
        migrator.add_column(table, column, field).run()
