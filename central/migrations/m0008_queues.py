"""Queues and notices: the office's approval of registrations, returned invitations, staff positions.

- ``meeting.registration_approval`` (bool, default false): a delegate registered by an organisation waits for the
  office's approval (no code, no mail, not on the gates) until a clerk or leader approves or refuses it.
- ``delegate.approval`` (varchar 16, default ``approved``, indexed): pending, approved or refused; every delegate
  stored before was approved as it was made. ``delegate.decision_note`` (text, default ''): the reason of a
  refusal; ``delegate.decided_by`` (varchar 64, default ''), ``delegate.decided_at`` (datetime, null).
- ``invitation.returned_by`` (varchar 64, default '') and ``invitation.returned_at`` (datetime, null): the leader who
  returned it and when (the clerk's notice; ``comment`` already holds the leader's words).
- ``user.position`` (varchar 120, default ''): the person's position (chức vụ), shown beside their full name.
"""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext

APPROVED = "approved"
"""``ApprovalState.APPROVED`` as of this migration (frozen here: a migration never imports today's code)."""


def up(ctx: MigrationContext) -> None:
    """Add the columns, and the index of ``delegate.approval``."""
    migrator = ctx.migrator
    for table, column, field in (
        ("meeting", "registration_approval", peewee.BooleanField(default=False)),
        ("delegate", "approval", peewee.CharField(max_length=16, default=APPROVED)),
        ("delegate", "decision_note", peewee.TextField(default="")),
        ("delegate", "decided_by", peewee.CharField(max_length=64, default="")),
        ("delegate", "decided_at", peewee.DateTimeField(null=True)),
        ("invitation", "returned_by", peewee.CharField(max_length=64, default="")),
        ("invitation", "returned_at", peewee.DateTimeField(null=True)),
        ("user", "position", peewee.CharField(max_length=120, default="")),
    ):
        migrator.add_column(table, column, field).run()
    migrator.add_index("delegate", ("approval",), False).run()
