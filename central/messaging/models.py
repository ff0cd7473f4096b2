"""The messaging side's own tables: the change feed's durable cursors (the global one, and one per site)."""

from __future__ import annotations

import peewee

from central.core.models import BaseModel


class FeedCursor(BaseModel):
    """How far a feed has published the change log."""

    name = peewee.CharField(max_length=32, unique=True)
    seq = peewee.IntegerField(default=0)


class SiteFeedCursor(BaseModel):
    """The ``seq`` of the last change the feed published on a site's change stream: the ``prev`` of the site's
    next message. The row of ``*`` (:data:`central.core.models.ALL_SITES`) holds the last change meant for every
    site, or skipped (a hole that may have been for any site): every site's next ``prev`` is at least that.
    Only ever raised, so two feeds (two ingest processes) never lower it."""

    site_id = peewee.CharField(max_length=32, unique=True)
    seq = peewee.IntegerField(default=0)

    class Meta:
        table_name = "site_feed_cursor"
