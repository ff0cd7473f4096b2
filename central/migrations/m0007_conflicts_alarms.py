"""Record conflicts and gate alarms.

- ``check_in_conflict``: an entry central flags (a code revoked or replaced before the scan, a second entry in one
  meeting day under ``single``, a gate of none of the meeting's venues' sites), unique per (check-in, reason), with
  the meeting, the delegate, the entry it repeats (``other_checkin``) or the delegate who replaced the one whose
  code was used (``other_delegate``), and when central found it.
- ``gate_alarm``: a forced door (unique per check-in) or an emergency activation of a gate, when it was raised and
  cleared, and who acknowledged it when.
"""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext


class _Ref(peewee.Model):
    """A stand-in for an existing table that a foreign key below points at (not created here)."""


def _ref(table: str) -> type[peewee.Model]:
    return type(f"_{table}", (_Ref,), {"Meta": type("Meta", (), {"table_name": table, "legacy_table_names": False})})


def up(ctx: MigrationContext) -> None:
    """Create the two tables with their indexes."""
    checkins, meetings, delegates, gates = (_ref(name) for name in ("check_in", "meeting", "delegate", "gate"))

    class _CheckInConflict(peewee.Model):
        checkin = peewee.ForeignKeyField(checkins, on_delete="CASCADE")
        reason = peewee.CharField(max_length=32)
        meeting = peewee.ForeignKeyField(meetings, null=True, on_delete="CASCADE")
        delegate = peewee.ForeignKeyField(delegates, null=True, on_delete="SET NULL")
        other_checkin = peewee.ForeignKeyField(checkins, null=True, on_delete="SET NULL", backref="+")
        other_delegate = peewee.ForeignKeyField(delegates, null=True, on_delete="SET NULL", backref="+")
        detected_at = peewee.DateTimeField(index=True)

        class Meta:
            table_name = "check_in_conflict"
            legacy_table_names = False
            indexes = ((("checkin", "reason"), True),)

    class _GateAlarm(peewee.Model):
        gate = peewee.ForeignKeyField(gates, on_delete="CASCADE")
        kind = peewee.CharField(max_length=16)
        checkin = peewee.ForeignKeyField(checkins, null=True, unique=True, on_delete="SET NULL")
        raised_at = peewee.DateTimeField(index=True)
        cleared_at = peewee.DateTimeField(null=True)
        acknowledged_at = peewee.DateTimeField(null=True, index=True)
        acknowledged_by = peewee.CharField(max_length=64, null=True)
        note = peewee.CharField(max_length=200, default="")

        class Meta:
            table_name = "gate_alarm"
            legacy_table_names = False

    models: list[type[peewee.Model]] = [checkins, meetings, delegates, gates, _CheckInConflict, _GateAlarm]
    with ctx.db.bind_ctx(models):
        ctx.db.create_tables([_CheckInConflict, _GateAlarm])
