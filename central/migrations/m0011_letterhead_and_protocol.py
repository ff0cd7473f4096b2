"""Formal giấy mời and protocol order (issue 17, points 5 and 9).

- ``issuing_body``: a body that issues giấy mời (Decree 30/2020's letterhead): parent body, name, the document's
  and the body's symbols (``12/GM-UBND``), the place of the date line, the signer, extra "Nơi nhận" lines, and
  which body is the default.
- ``invitation.issuing_body_id`` (null, indexed, ``ON DELETE SET NULL``): the body whose letterhead an invitation
  carries; rows stored before have none, which means the default body (and their numbers, e.g. ``3/TM-UBND``,
  stay as they were).
- ``organisation.protocol_rank`` (integer, null): the organisation's rank in protocol order.
- ``protocol_setting``: one row, the office's order of positions, one per line.
"""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext


class IssuingBody(peewee.Model):
    id = peewee.AutoField()
    parent_name = peewee.CharField(max_length=200, default="")
    name = peewee.CharField(max_length=200, unique=True)
    doc_symbol = peewee.CharField(max_length=16, default="GM")
    body_symbol = peewee.CharField(max_length=32, default="UBND")
    place = peewee.CharField(max_length=100, default="")
    signing_authority = peewee.CharField(max_length=120, default="")
    signer_position = peewee.CharField(max_length=120, default="")
    signer_name = peewee.CharField(max_length=120, default="")
    recipients = peewee.TextField(default="")
    is_default = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField()

    class Meta:
        legacy_table_names = False


class ProtocolSetting(peewee.Model):
    position_order = peewee.TextField(default="")
    updated_at = peewee.DateTimeField()

    class Meta:
        legacy_table_names = False


def up(ctx: MigrationContext) -> None:
    """Create ``issuing_body`` and ``protocol_setting``; add ``invitation.issuing_body_id`` and
    ``organisation.protocol_rank``."""
    with ctx.db.bind_ctx([IssuingBody, ProtocolSetting]):
        ctx.db.create_tables([IssuingBody, ProtocolSetting])
        migrator = ctx.migrator
        migrator.add_column("organisation", "protocol_rank", peewee.IntegerField(null=True)).run()
        body = peewee.ForeignKeyField(IssuingBody, null=True, field=IssuingBody.id, on_delete="SET NULL")
        migrator.add_column("invitation", "issuing_body_id", body).run()
