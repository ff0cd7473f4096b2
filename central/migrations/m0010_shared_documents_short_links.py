"""Documents the office shares with invitees, and the short registration links of SMS.

- ``meeting_document.shared`` (bool, default false): the office marked the document for the invited
  organisations; it is linked from the invitation e-mail, listed on the registration page and downloadable
  with the invitation's secret. Documents uploaded before stay private to the staff.
- ``invitation.short_hash`` (text 64, null, unique): the SHA-256 of the invitation's short token, the
  8-character id of its SMS link ``/dk/<token>``. Invitations approved before have none: their long links
  (``/registration/<number>?secret=``) keep working.
"""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext


def up(ctx: MigrationContext) -> None:
    """Add ``meeting_document.shared`` and ``invitation.short_hash`` with its unique index."""
    migrator = ctx.migrator
    migrator.add_column("meeting_document", "shared", peewee.BooleanField(default=False)).run()
    migrator.add_column("invitation", "short_hash", peewee.CharField(max_length=64, null=True)).run()
    migrator.add_index("invitation", ("short_hash",), True).run()
