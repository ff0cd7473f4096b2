"""A change stream per site (issue 16, point 3): which sites each change goes to, and where each site's stream is.

- ``change_site`` (``seq``, ``site_id``; primary key both, index ``(site_id, seq)``): one row per change and gate
  site that gets it, or one row with ``*`` for a change every site gets (signing keys). The feed publishes change
  ``seq`` on the stream of each of its sites; the fleet page compares a gate's cache with the latest ``seq`` of its
  site (an index lookup).
- ``site_feed_cursor`` (``site_id`` unique, ``seq``): the last change the feed published on each site's stream (the
  ``prev`` of the site's next message); the row ``*`` the last change for every site (or skipped).

Backfill: the changes the feed had already published (up to its cursor, on the global stream) are recorded as one
``*`` row at the cursor, meaning "every change up to here concerned every site": a site's latest change is then at
least the cursor, and the first message of each site's stream carries a ``prev`` of at least the cursor, so a gate
that had not followed the global stream that far loads a snapshot. The changes after the cursor (stored while the
feed was down) get their exact sites, computed here as :func:`central.core.changes.change_sites` does on
2026-12-07 (frozen: a meeting's main hall site and its remote points' sites; a key change every site).
"""

from __future__ import annotations

import json
from typing import Any

import peewee

from central.migrations import MigrationContext

ALL_SITES = "*"
FEED_NAME = "mqtt"


def _meeting_sites(ctx: MigrationContext, meeting_id: int) -> list[str]:
    param = ctx.db.param
    found = [row[0] for row in ctx.db.execute_sql(f'SELECT "site_id" FROM "meeting" WHERE "id" = {param}',
                                                   (meeting_id,)).fetchall()]
    found += [row[0] for row in ctx.db.execute_sql(
        'SELECT "v"."site_id" FROM "meeting_venue" AS "mv" JOIN "venue" AS "v" ON "v"."id" = "mv"."venue_id" '
        f'WHERE "mv"."meeting_id" = {param} AND "v"."site_id" <> \'\'', (meeting_id,)).fetchall()]
    return found


def _sites_of(ctx: MigrationContext, kind: str, body: dict[str, Any]) -> set[str]:
    if kind.startswith("key_"):
        return {ALL_SITES}
    if kind == "meeting_upsert":
        meeting = body.get("meeting") or {}
        named = set(meeting.get("sites") or [meeting.get("site_id")])
        return {site for site in named | set(_meeting_sites(ctx, int(meeting.get("id", 0)))) if site}
    if kind == "delegate_upsert":
        meeting_id = int((body.get("delegate") or {}).get("meeting_id", 0))
    else:
        meeting_id = int(body.get("meeting_id", 0))
    sites = set(_meeting_sites(ctx, meeting_id))
    return sites or ({ALL_SITES} if kind == "delegate_revoke" else set())


def up(ctx: MigrationContext) -> None:
    """Create the two tables and record the sites of the changes already stored."""

    class _ChangeSite(peewee.Model):
        seq = peewee.IntegerField()
        site_id = peewee.CharField(max_length=32)

        class Meta:
            table_name = "change_site"
            legacy_table_names = False
            primary_key = peewee.CompositeKey("seq", "site_id")
            indexes = ((("site_id", "seq"), False),)

    class _SiteFeedCursor(peewee.Model):
        site_id = peewee.CharField(max_length=32, unique=True)
        seq = peewee.IntegerField(default=0)

        class Meta:
            table_name = "site_feed_cursor"
            legacy_table_names = False

    with ctx.db.bind_ctx([_ChangeSite, _SiteFeedCursor]):
        ctx.db.create_tables([_ChangeSite, _SiteFeedCursor])
        param = ctx.db.param
        row = ctx.db.execute_sql(f'SELECT "seq" FROM "feed_cursor" WHERE "name" = {param}', (FEED_NAME,)).fetchone()
        last = ctx.db.execute_sql('SELECT MAX("seq") FROM "change"').fetchone()[0] or 0
        published = min(int(row[0]) if row else 0, last)
        if published > 0:
            _ChangeSite.create(seq=published, site_id=ALL_SITES)
            _SiteFeedCursor.create(site_id=ALL_SITES, seq=published)
        pending = ctx.db.execute_sql(f'SELECT "seq", "kind", "body" FROM "change" WHERE "seq" > {param} '
                                     'ORDER BY "seq"', (published,)).fetchall()
        for seq, kind, body in pending:
            for site in sorted(_sites_of(ctx, kind, json.loads(body))):
                _ChangeSite.create(seq=seq, site_id=site)
