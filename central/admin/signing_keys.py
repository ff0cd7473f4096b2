"""The signing keys as the administrator sees them (page and ``vaora-central signing-key``): state, dates, and
until when a retired key's codes still need it. Rotation and revocation themselves are :mod:`central.core.keys`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from central.core import keys
from central.core.signing import key_file_name
from central.meetings.models import Meeting
from central.registration.models import Delegate
from protocols.codes import Scheme, read_signed_claims


@dataclass(frozen=True)
class KeyView:
    """One signing key for listing: ``codes_until`` is when the last unrevoked code it signed expires."""

    key_id: int
    state: keys.KeyState
    fingerprint: str
    created_at: datetime
    revoked_at: datetime | None
    codes: int
    codes_until: datetime | None


def list_keys() -> list[KeyView]:
    """Every signing key, newest first, with how many unrevoked codes it signed and when the last expires."""
    signed = (
        Delegate.select(Delegate.code, Delegate.valid_until)
        .join(Meeting)
        .where((Meeting.scheme == Scheme.SIGNED.value) & Delegate.revoked_at.is_null())
    )
    counts: dict[int, int] = {}
    until: dict[int, datetime] = {}
    for delegate in signed:
        claims = read_signed_claims(delegate.code)
        if claims is None:
            continue
        counts[claims.key_id] = counts.get(claims.key_id, 0) + 1
        if claims.key_id not in until or delegate.valid_until > until[claims.key_id]:
            until[claims.key_id] = delegate.valid_until
    return [
        KeyView(key_id=row.key_id, state=keys.state_of(row), fingerprint=key_file_name(row.public_key)[:-4],
                created_at=row.created_at, revoked_at=row.revoked_at, codes=counts.get(row.key_id, 0),
                codes_until=until.get(row.key_id))
        for row in keys.all_keys()
    ]
