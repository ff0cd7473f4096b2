"""Record each site broker's bridge link: ``site_link`` (one row per site, unique ``site_id``) with its state
(``connected`` / ``disconnected`` / ``never``: :class:`central.core.states.SiteLinkState`), when central learned
that state (``changed_at``) and when it last learned the bridge connected (``connected_at``, null: never).
The ingest workers write it from the retained ``vaora/v1/sites/<site>/bridge`` topic; ``broker-config --site``
adds the site as ``never`` connected.
"""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext


def up(ctx: MigrationContext) -> None:
    """Create ``site_link``."""

    class _SiteLink(peewee.Model):
        site_id = peewee.CharField(max_length=32, unique=True)
        state = peewee.CharField(max_length=16)  # the default (never) is the model's, as peewee keeps it
        changed_at = peewee.DateTimeField()
        connected_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "site_link"
            legacy_table_names = False

    with ctx.db.bind_ctx([_SiteLink]):
        ctx.db.create_tables([_SiteLink])
