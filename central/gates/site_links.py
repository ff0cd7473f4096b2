"""Site links: whether each site broker's bridge to the core is up, as central learns it from the retained
``vaora/v1/sites/<site>/bridge`` topic (Mosquitto publishes "1" when the bridge connects and the core publishes
the bridge's last will "0" when it drops).

Every ingest process subscribes to that topic without a share group (a shared subscription gets no retained
message) and writes the same row: :func:`record_bridge_state` changes it only when the state differs, so two
processes writing the same notification change it once and ``changed_at`` stays the time it first changed.
``broker-config --site`` registers the site (:func:`register_site`, state ``never``), so a site broker whose
bridge has never reached the core (a wrong password, a wrong address) shows as offline from the start.

A site whose link is not ``connected`` is offline: its gates still admit people and hold their check-ins (in
the site broker's bridge queue and in their outboxes), but central no longer hears them, so the fleet page
shows them behind an offline site with their last known state, never as online.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import peewee

from central.core.db import tuples
from central.core.errors import InvalidInputError
from central.core.states import SiteLinkState
from central.gates.models import Gate, SiteLink
from protocols import topics

BRIDGE_PAYLOADS: dict[bytes, SiteLinkState] = {b"1": SiteLinkState.CONNECTED, b"0": SiteLinkState.DISCONNECTED}
"""The only payloads of the bridge-state topic (Mosquitto's notification and last will)."""


def parse_bridge_payload(raw: bytes) -> SiteLinkState | None:
    """``b"1"`` -> connected, ``b"0"`` -> disconnected; None for anything else (nothing is stripped or guessed)."""
    return BRIDGE_PAYLOADS.get(bytes(raw))


def register_site(site_id: str, now: datetime) -> bool:
    """Record that ``site_id`` has a site broker (state ``never`` until its bridge is heard); True when new."""
    if not topics.is_valid_id(site_id):
        raise InvalidInputError({"site_id": "Mã khu vực không hợp lệ."})
    if SiteLink.select().where(SiteLink.site_id == site_id).exists():
        return False
    SiteLink.insert(site_id=site_id, state=SiteLinkState.NEVER, changed_at=now).on_conflict_ignore().execute()
    return True


def record_bridge_state(site_id: str, state: SiteLinkState, now: datetime) -> bool:
    """Store ``site_id``'s bridge state; True when it changed (writing the same state again changes nothing)."""
    SiteLink.insert(site_id=site_id, state=SiteLinkState.NEVER, changed_at=now).on_conflict_ignore().execute()
    values: dict[str, Any] = {"state": state, "changed_at": now}
    if state == SiteLinkState.CONNECTED:
        values["connected_at"] = now
    return bool(SiteLink.update(**values)
                .where((SiteLink.site_id == site_id) & (SiteLink.state != state)).execute())


def offline_sites() -> set[str]:
    """The sites with a site broker whose bridge is not connected (disconnected or never connected)."""
    return {str(row[0]) for row in tuples(SiteLink.select(SiteLink.site_id)
                                          .where(SiteLink.state != SiteLinkState.CONNECTED))}


def site_links() -> list[dict[str, Any]]:
    """Every site that has gates, by site id: its gate count, whether it has a site broker (``bridged``), the
    link's ``state`` (None without a site broker), ``offline``, and ``since`` (when central learned the state)
    and ``connected_at`` (ISO 8601, or None)."""
    counts = {str(site_id): int(count) for site_id, count
              in tuples(Gate.select(Gate.site_id, peewee.fn.COUNT(Gate.id)).group_by(Gate.site_id))}
    links = {row.site_id: row for row in SiteLink.select()}
    described = []
    for site_id in sorted(counts):
        row = links.get(site_id)
        state = SiteLinkState(row.state) if row is not None else None
        described.append({
            "site_id": site_id,
            "gates": counts[site_id],
            "bridged": row is not None,
            "state": state.value if state is not None else None,
            "offline": state is not None and state != SiteLinkState.CONNECTED,
            "since": row.changed_at.isoformat() if row is not None else None,
            "connected_at": row.connected_at.isoformat() if row is not None and row.connected_at else None,
        })
    return described
