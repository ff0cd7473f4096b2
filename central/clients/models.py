"""The table of API clients: a machine client's name, its token's hash and public prefix, its scopes."""

from __future__ import annotations

import peewee

from central.core.models import BaseModel, UTCDateTimeField


class ApiClient(BaseModel):
    """A machine client of the JSON API with its own token (only the token's SHA-256 hash is stored)."""

    name = peewee.CharField(max_length=48, unique=True)
    prefix = peewee.CharField(max_length=16)  # the token's first characters, shown in lists to tell tokens apart
    token_hash = peewee.CharField(max_length=64, unique=True)  # hex SHA-256 of the whole token
    scopes = peewee.CharField(max_length=200)  # space-separated, see central.clients.scopes
    created_by = peewee.CharField(max_length=64)
    created_at = UTCDateTimeField()
    last_used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)

    @property
    def scope_set(self) -> frozenset[str]:
        """The client's scopes."""
        return frozenset(self.scopes.split())
