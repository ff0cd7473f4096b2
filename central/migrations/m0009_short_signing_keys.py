"""Give each signing key its short public key: the secp256k1 key of version 2 signed codes.

- ``signing_key.short_public_key`` (text, null): URL-safe base64 of the compressed secp256k1 public key derived
  from the key's Ed25519 private key (``protocols.codes.short_private_key``). Keys registered before stay null
  until central next loads their private key to sign (``central.core.keys.active_key`` fills it in and sends
  gates a ``key_add``); a key without one keeps issuing version 1 codes.
"""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext


def up(ctx: MigrationContext) -> None:
    """Add the nullable ``short_public_key`` column of ``signing_key``."""
    ctx.migrator.add_column("signing_key", "short_public_key", peewee.CharField(max_length=64, null=True)).run()
