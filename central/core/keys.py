"""Signing keys known to central and gates: one active key signs codes; retired keys still verify; revoked don't.

A key's state (:class:`KeyState`) is kept in the ``signing_key`` table: ``active`` (signs new codes; exactly one),
``retired`` (replaced by a rotation: gates keep verifying it, so the codes it signed stay good until they
expire) and ``revoked`` (no longer trusted: a ``key_revoke`` change tells every online gate, which then refuses
its codes as ``unknown_key``). The private halves are files (:mod:`central.core.signing`). Every process asks
the database for the active key on each use (:func:`active_key`), so a rotation made by ``vaora-central
signing-key rotate`` or the admin page takes effect in every web worker at once. Rotation and revocation are
audited (``signing_key.rotate``, ``signing_key.revoke``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import peewee
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.core.audit import audit
from central.core.changes import append_change
from central.core.db import write_transaction
from central.core.errors import ConflictError, NotFoundError
from central.core.models import SigningKey
from central.core.signing import create_rotated_key, find_private_key, load_or_create_signing_key
from protocols import payloads
from protocols.codes import public_key_to_text, short_private_key, short_public_key_to_text
from protocols.reasons import Reason

log = logging.getLogger(__name__)

MAX_KEY_ID = 0xFFFF
SYSTEM_ACTOR = "system"


class KeyState(StrEnum):
    """Where a signing key is in its life."""

    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ActiveKey:
    """The key central signs with, and the id gates know it by."""

    key_id: int
    private_key: Ed25519PrivateKey


def state_of(row: SigningKey) -> KeyState:
    """Return the state of a signing key row."""
    if row.revoked_at is not None:
        return KeyState.REVOKED
    return KeyState.ACTIVE if row.active else KeyState.RETIRED


def short_key_text(private_key: Ed25519PrivateKey) -> str:
    """The short (secp256k1) public key of version 2 codes for ``private_key``, as gates receive it."""
    return short_public_key_to_text(short_private_key(private_key).public_key)


def _fill_short_key(row: SigningKey, private_key: Ed25519PrivateKey, now: datetime) -> None:
    """Record the short public key of a key registered before it existed, and tell gates (``key_add``)."""
    if row.short_public_key is not None:
        return
    with write_transaction():
        row.short_public_key = short_key_text(private_key)
        row.save()
        append_change(payloads.KeyAdd(key=key_entry(row)), now)
    log.info("signing key short public key recorded key_id=%s", row.key_id)


def _next_key_id() -> int:
    last = SigningKey.select(peewee.fn.MAX(SigningKey.key_id)).scalar() or 0
    if last >= MAX_KEY_ID:
        raise RuntimeError("no key id left")
    return int(last) + 1


def register_signing_key(private_key: Ed25519PrivateKey, now: datetime) -> ActiveKey:
    """Make ``private_key`` the active signing key, registering its public key if new.

    A new key gets the next key id and a ``key_add`` change; older keys stay trusted for verification.
    A revoked key is never made active again (:class:`ConflictError`).
    """
    public_text = public_key_to_text(private_key.public_key())
    with write_transaction():
        row = SigningKey.get_or_none(SigningKey.public_key == public_text)
        if row is None:
            row = SigningKey.create(key_id=_next_key_id(), public_key=public_text, active=True, created_at=now,
                                    short_public_key=short_key_text(private_key))
            append_change(payloads.KeyAdd(key=key_entry(row)), now)
            log.info("signing key registered key_id=%s", row.key_id)
        if row.revoked_at is not None:
            raise ConflictError(Reason.REVOKED, f"Khóa ký số {row.key_id} đã bị thu hồi")
        SigningKey.update(active=False).where(SigningKey.id != row.id).execute()
        if not row.active:
            row.active = True
            row.save()
    _fill_short_key(row, private_key, now)
    return ActiveKey(key_id=row.key_id, private_key=private_key)


def active_key(key_file: Path, now: datetime, cache: dict[int, Ed25519PrivateKey] | None = None) -> ActiveKey:
    """Return the key to sign with now, as the database says (one query; private keys are cached in ``cache``).

    The very first time the first key file is loaded (or created) and registered. Should no key be active but
    some exist (all revoked), a new key is made by a rotation.
    """
    row = SigningKey.get_or_none(SigningKey.active & SigningKey.revoked_at.is_null())
    if row is None:
        if SigningKey.select().exists():
            return rotate(key_file, SYSTEM_ACTOR, now)
        return register_signing_key(load_or_create_signing_key(key_file), now)
    private = cache.get(row.key_id) if cache is not None else None
    if private is None:
        private = find_private_key(key_file, row.public_key)
        if private is None:
            raise RuntimeError(f"the private half of signing key {row.key_id} is missing beside {key_file}")
        if cache is not None:
            cache[row.key_id] = private
    _fill_short_key(row, private, now)
    return ActiveKey(key_id=row.key_id, private_key=private)


def get_key(key_id: int) -> SigningKey:
    """Return the signing key ``key_id`` or raise :class:`NotFoundError`."""
    row = SigningKey.get_or_none(SigningKey.key_id == key_id)
    if row is None:
        raise NotFoundError(Reason.UNKNOWN_KEY, f"Không có khóa ký số {key_id}")
    return row


def rotate(key_file: Path, actor: str, now: datetime) -> ActiveKey:
    """Make a new active key (stored beside ``key_file``); the previous one is retired and keeps verifying.

    Gates learn the new public key from a ``key_add`` change; audited as ``signing_key.rotate``.
    """
    private, path = create_rotated_key(key_file)
    try:
        with write_transaction():
            previous = SigningKey.get_or_none(SigningKey.active & SigningKey.revoked_at.is_null())
            row = SigningKey.create(key_id=_next_key_id(), public_key=public_key_to_text(private.public_key()),
                                    active=True, created_at=now, short_public_key=short_key_text(private))
            SigningKey.update(active=False).where(SigningKey.id != row.id).execute()
            append_change(payloads.KeyAdd(key=key_entry(row)), now)
            audit(actor, "signing_key.rotate", f"signing_key:{row.key_id}",
                  {"key_id": row.key_id, "retired": previous.key_id if previous is not None else None}, now=now)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    log.info("signing key rotated key_id=%s retired=%s by=%s", row.key_id,
             previous.key_id if previous is not None else None, actor)
    return ActiveKey(key_id=row.key_id, private_key=private)


def revoke(key_file: Path, key_id: int, actor: str, now: datetime) -> SigningKey:
    """Revoke ``key_id``: gates stop trusting it (a ``key_revoke`` change); audited as ``signing_key.revoke``.

    Revoking the active key first rotates, so central always has a key to sign with. Raises
    :class:`NotFoundError` for an unknown key and :class:`ConflictError` for one already revoked.
    """
    row = get_key(key_id)
    if row.revoked_at is not None:
        raise ConflictError(Reason.REVOKED, f"Khóa ký số {key_id} đã bị thu hồi trước đó")
    replacement = rotate(key_file, actor, now) if row.active else None
    with write_transaction():
        row = get_key(key_id)
        if row.revoked_at is not None:
            raise ConflictError(Reason.REVOKED, f"Khóa ký số {key_id} đã bị thu hồi trước đó")
        row.revoked_at = now
        row.active = False
        row.save()
        append_change(payloads.KeyRevoke(key_id=key_id), now)
        audit(actor, "signing_key.revoke", f"signing_key:{key_id}",
              {"key_id": key_id, "replaced_by": replacement.key_id if replacement is not None else None}, now=now)
    log.warning("signing key revoked key_id=%s by=%s", key_id, actor)
    return row


def key_entry(row: SigningKey) -> payloads.KeyEntry:
    """Return what a gate knows of a signing key."""
    return payloads.KeyEntry(key_id=row.key_id, public_key=row.public_key, revoked=row.revoked_at is not None,
                             short_key=row.short_public_key)


def trusted_keys() -> list[payloads.KeyEntry]:
    """Return every registered key (revoked ones flagged), oldest first."""
    return [key_entry(row) for row in SigningKey.select().order_by(SigningKey.key_id)]


def all_keys() -> list[SigningKey]:
    """Return every signing key row, newest first."""
    return list(SigningKey.select().order_by(SigningKey.key_id.desc()))
