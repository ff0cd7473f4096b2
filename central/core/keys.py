"""Signing keys known to central and gates: the active key signs codes; every unrevoked key verifies."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import peewee
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.core.changes import append_change
from central.core.db import write_transaction
from central.core.models import SigningKey
from protocols import payloads
from protocols.codes import public_key_to_text

log = logging.getLogger(__name__)

MAX_KEY_ID = 0xFFFF


@dataclass(frozen=True)
class ActiveKey:
    """The key central signs with, and the id gates know it by."""

    key_id: int
    private_key: Ed25519PrivateKey


def register_signing_key(private_key: Ed25519PrivateKey, now: datetime) -> ActiveKey:
    """Make ``private_key`` the active signing key, registering its public key if new.

    A new key gets the next key id and a ``key_add`` change; older keys stay trusted for verification.
    """
    public_text = public_key_to_text(private_key.public_key())
    with write_transaction():
        row = SigningKey.get_or_none(SigningKey.public_key == public_text)
        if row is None:
            last = SigningKey.select(peewee.fn.MAX(SigningKey.key_id)).scalar() or 0
            if last >= MAX_KEY_ID:
                raise RuntimeError("no key id left")
            row = SigningKey.create(
                key_id=last + 1, public_key=public_text, active=True, created_at=now
            )
            append_change(payloads.KeyAdd(key=key_entry(row)), now)
            log.info("signing key registered key_id=%s", row.key_id)
        SigningKey.update(active=False).where(SigningKey.id != row.id).execute()
        if not row.active:
            row.active = True
            row.save()
    return ActiveKey(key_id=row.key_id, private_key=private_key)


def key_entry(row: SigningKey) -> payloads.KeyEntry:
    """Return what a gate knows of a signing key."""
    return payloads.KeyEntry(key_id=row.key_id, public_key=row.public_key, revoked=row.revoked_at is not None)


def trusted_keys() -> list[payloads.KeyEntry]:
    """Return every registered key (revoked ones flagged), oldest first."""
    return [key_entry(row) for row in SigningKey.select().order_by(SigningKey.key_id)]
