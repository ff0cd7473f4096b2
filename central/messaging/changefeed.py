"""The change feed: publishes central's change log to the gates over MQTT, in order, from a durable cursor.

The ``change`` table is the outbox: a change is stored in the same transaction as the data it describes, with the
gate sites it concerns (``change_site``, :func:`central.core.changes.change_sites`). This worker publishes every
stored change at QoS 1, strictly in sequence order, on the stream of each of its sites,
``vaora/v1/sites/<site>/changes`` (a change for every site, ``*``, on the stream of every site it knows: of a gate,
a venue, or published to before). A gate reads only its own site's stream, so it never receives another site's
delegates. Each site's message carries ``prev``, the ``seq`` of the change published to that site before it: a
gate whose cache is below ``prev`` missed one and loads a snapshot (:mod:`gate.follow`).

With ``legacy`` (``VAORA_LEGACY_CHANGE_STREAM=1``, while gates older than the per-site streams remain) every
change is also published, without ``prev``, on the old global ``vaora/v1/central/changes``.

Its cursors live in the database (``feed_cursor``: the last change the broker accepted; ``site_feed_cursor``: the
last per site), so after a restart it resumes where it stopped with the same ``prev`` values; a change published
twice is harmless because gates apply a sequence number once. The cursors are only ever raised, so a second
ingest process's feed, which publishes the same changes, never takes them back.

On PostgreSQL a sequence number can be taken by a transaction that commits later, or never (rolled back). The
feed therefore publishes only contiguous sequence numbers; a hole that stays open longer than ``hole_timeout``
is skipped. The skipped change could have been for any site, so the next message of every site carries a ``prev``
of at least the hole (the ``*`` cursor): every gate whose cache is below it loads a fresh snapshot, as the global
stream's gap made every gate do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import peewee

from central.core.changes import changes_since, sites_of_changes
from central.core.db import database, tuples
from central.core.models import ALL_SITES
from central.messaging.models import FeedCursor, SiteFeedCursor
from protocols import payloads, topics
from protocols.mqtt import ClientSettings, TlsFiles, make_client

log = logging.getLogger(__name__)

FEED_NAME = "mqtt"
DEFAULT_CLIENT_ID = "vaora-central-changefeed"


def known_sites() -> set[str]:
    """Every gate site central knows: of a registered gate, of a venue or a meeting, or one the feed has published
    to."""
    from central.gates.models import Gate
    from central.meetings.models import Meeting, Venue

    found = {row[0] for row in tuples(Gate.select(Gate.site_id).distinct())}
    found |= {row[0] for row in tuples(Venue.select(Venue.site_id).where(Venue.site_id != "").distinct())}
    found |= {row[0] for row in tuples(Meeting.select(Meeting.site_id).distinct())}
    found |= {row[0] for row in tuples(SiteFeedCursor.select(SiteFeedCursor.site_id))}
    found.discard(ALL_SITES)
    return {site for site in found if topics.is_valid_id(site)}


def _raise_cursor(site_id: str, seq: int) -> None:
    """Set a site's cursor to ``seq`` unless it is further already (one statement: two feeds never lower it)."""
    SiteFeedCursor.insert(site_id=site_id, seq=0).on_conflict_ignore().execute()
    (SiteFeedCursor.update(seq=peewee.Case(None, [(SiteFeedCursor.seq < seq, seq)], SiteFeedCursor.seq))
     .where(SiteFeedCursor.site_id == site_id).execute())


class ChangeFeed:
    """Publish new changes on each of their sites' change topics (and, with ``legacy``, on ``topics.CHANGES``);
    call :meth:`start` / :meth:`stop` or :meth:`run_forever`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        tls: TlsFiles | None = None,
        poll_s: float = 0.1,
        hole_timeout: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        legacy: bool = False,
    ) -> None:
        self.legacy = legacy
        self.poll_s = poll_s
        self.hole_timeout = hole_timeout
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hole_since: float | None = None
        self.published_seq = 0
        self.site_seq: dict[str, int] = {}
        """The last change published per site (``*``: for every site, or skipped): the next ``prev``."""
        # A clean session: the feed only publishes, and its durable cursor (not the broker) says what is left.
        self.client = make_client(ClientSettings(client_id=client_id, username=username, password=password,
                                                 persistent=False, tls=tls))
        self.client.max_queued_messages_set(0)
        self.host, self.port = host, port

    def load_cursor(self) -> int:
        """Read where publishing stopped last time, globally and per site (the cursor row is made on first use)."""
        with database.connection_context():
            cursor, _ = FeedCursor.get_or_create(name=FEED_NAME)
            self.published_seq = cursor.seq
            self.site_seq = {row.site_id: row.seq for row in SiteFeedCursor.select()}
        return self.published_seq

    def prev_for(self, site_id: str, seq: int) -> int:
        """The ``prev`` of change ``seq`` on ``site_id``'s stream: the last change published to the site or to every
        site (or skipped), and below ``seq`` whatever the stored cursors say."""
        return min(max(self.site_seq.get(site_id, 0), self.site_seq.get(ALL_SITES, 0)), seq - 1)

    def messages_of(self, change: payloads.Change, sites: set[str],
                    every_site: Callable[[], set[str]]) -> list[tuple[str, bytes]]:
        """The (topic, payload) pairs that publish ``change``, meant for ``sites``: one per site, and the legacy
        global one when it is on."""
        targets = every_site() if ALL_SITES in sites else sites
        messages = [(topics.CHANGES, payloads.encode(change))] if self.legacy else []
        for site in sorted(targets):
            if not topics.is_valid_id(site):
                log.warning("change feed: seq=%d names an invalid site=%r; not published there", change.seq, site)
                continue
            prev = self.prev_for(site, change.seq)
            messages.append((topics.site_changes(site), payloads.encode(change.model_copy(update={"prev": prev}))))
        return messages

    def start(self) -> None:
        """Connect in the background and start publishing."""
        self.load_cursor()
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="changefeed", daemon=True)
        self._thread.start()
        log.info("change feed started from seq=%d", self.published_seq)

    def stop(self) -> None:
        """Stop publishing and disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.client.disconnect()
        self.client.loop_stop()

    def run_forever(self, stop_event: threading.Event) -> None:
        """Run until ``stop_event`` is set."""
        self.start()
        try:
            stop_event.wait()
        finally:
            self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.publish_pending()
            except peewee.DatabaseError:
                log.exception("change feed: database error; retrying")
                if not database.is_closed():
                    database.close()
            except Exception:
                log.exception("change feed failed; retrying")

    def publish_pending(self) -> int:
        """Publish every change after the cursor that is contiguous (or whose hole timed out); return how many."""
        if not self.client.is_connected():
            return 0
        published = 0
        touched: dict[str, int] = {}
        with database.connection_context():
            pending = changes_since(self.published_seq, limit=500)
            sites_by_seq = sites_of_changes(change.seq for change in pending)
            everywhere: set[str] | None = None

            def every_site() -> set[str]:
                nonlocal everywhere
                if everywhere is None:
                    everywhere = known_sites() | (set(self.site_seq) - {ALL_SITES})
                return everywhere

            for change in pending:
                if change.seq != self.published_seq + 1:
                    if not self._hole_expired(change.seq):
                        break
                    touched[ALL_SITES] = self.site_seq[ALL_SITES] = max(self.site_seq.get(ALL_SITES, 0),
                                                                        change.seq - 1)
                sites = sites_by_seq.get(change.seq, set())
                if not self._publish(change, self.messages_of(change, sites, every_site)):
                    break
                for site in ({ALL_SITES} if ALL_SITES in sites else sites):
                    touched[site] = self.site_seq[site] = change.seq
                self.published_seq = change.seq
                self._hole_since = None
                published += 1
            if published or touched:
                with database.atomic():
                    (FeedCursor.update(seq=peewee.Case(None, [(FeedCursor.seq < self.published_seq,
                                                               self.published_seq)], FeedCursor.seq))
                     .where(FeedCursor.name == FEED_NAME).execute())
                    for site, seq in sorted(touched.items()):
                        _raise_cursor(site, seq)
        return published

    def _publish(self, change: payloads.Change, messages: list[tuple[str, bytes]]) -> bool:
        """Publish one change's messages at QoS 1; True once the broker accepted every one."""
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=10)
            if not info.is_published():
                log.warning("change feed: broker did not accept seq=%d; will retry", change.seq)
                return False
        return True

    def _hole_expired(self, next_seq: int) -> bool:
        now = self._monotonic()
        if self._hole_since is None:
            self._hole_since = now
            return False
        if now - self._hole_since < self.hole_timeout:
            return False
        log.warning("change feed: seq %d..%d never committed; skipping (gates will resync)",
                    self.published_seq + 1, next_seq - 1)
        return True
