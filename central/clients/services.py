"""API clients: create (the token is returned once), list, revoke, and recognise a presented token.

Tokens are ``vaora_`` followed by 32 random bytes (URL-safe base64). Only their SHA-256 is stored: a token this
random needs no slow hash, and a hash lookup finds the client in one indexed query. Every change is audited.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from central.clients.models import ApiClient
from central.clients.scopes import SCOPES
from central.core import validation as v
from central.core.audit import audit
from central.core.db import write_transaction
from central.core.errors import ConflictError, InvalidInputError, NotFoundError
from central.core.tokens import digest
from protocols.reasons import Reason

TOKEN_PREFIX = "vaora_"
"""Every client token starts with this, so it is recognisable (and a secret scanner can find a leaked one)."""

PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
"""How many leading characters of a token are kept in clear to tell clients' tokens apart in lists."""

CLIENT_ACTOR_PREFIX = "client:"
"""A client's requests are audited as ``client:<name>``."""

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per client, so a busy client costs no write per request."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,47}$")


@dataclass(frozen=True)
class IssuedClient:
    """A client just created, with its token: the only time the token exists outside the caller."""

    client: ApiClient
    token: str


def _name(value: Any) -> str:
    name = v.text(value, required=True, max_length=48)
    if _NAME.fullmatch(name) is None:
        raise v.FieldError("Chỉ gồm chữ thường không dấu, số, '.', '-', '_' (tối đa 48 ký tự)")
    return name


def _scopes(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)) or not value:
        raise v.FieldError("Chọn ít nhất một quyền")
    unknown = [s for s in value if s not in SCOPES]
    if unknown:
        raise v.FieldError("Quyền không hợp lệ; chọn trong: " + ", ".join(SCOPES))
    return [s for s in SCOPES if s in value]


def create_client(data: Mapping[str, Any], *, actor: str, now: datetime) -> IssuedClient:
    """Validate ``name`` and ``scopes`` (a list, or a space-separated string), store the client and audit it.

    Returns the client with its new token; the token is not stored and cannot be shown again.
    """
    fields = v.FieldCollector(data)
    name = fields.take("name", _name)
    scopes = fields.take("scopes", _scopes)
    if name and ApiClient.select().where(ApiClient.name == name).exists():
        fields.add("name", "Tên này đã được dùng (kể cả cho ứng dụng đã thu hồi)")
    fields.raise_if_any()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with write_transaction():
            client = ApiClient.create(
                name=name, prefix=token[:PREFIX_LENGTH], token_hash=digest(token), scopes=" ".join(scopes),
                created_by=actor[:64], created_at=now,
            )
            audit(actor, "api_client.create", f"api_client:{client.id}",
                  {"name": name, "scopes": scopes, "prefix": client.prefix}, now=now)
    except peewee.IntegrityError:  # the same name created at the same moment
        raise InvalidInputError({"name": "Tên này đã được dùng (kể cả cho ứng dụng đã thu hồi)"}) from None
    return IssuedClient(ApiClient.get_by_id(client.id), token)


def list_clients() -> list[ApiClient]:
    """Return every client, revoked ones included, oldest first."""
    return list(ApiClient.select().order_by(ApiClient.created_at, ApiClient.id))


def get_client(ref: int | str) -> ApiClient:
    """Return the client with this id (an int or a string of digits) or name, or raise :class:`NotFoundError`."""
    if isinstance(ref, int) or ref.isdigit():
        client = ApiClient.get_or_none(ApiClient.id == int(ref))
    else:
        client = ApiClient.get_or_none(ApiClient.name == ref)
    if client is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy ứng dụng kết nối")
    return client


def revoke_client(ref: int | str, *, actor: str, now: datetime) -> ApiClient:
    """Revoke a client's token at ``now`` (its next request answers 401) and audit it.

    Raises :class:`ConflictError` (reason ``revoked``) when it is already revoked.
    """
    with write_transaction():
        client = get_client(ref)
        if client.revoked_at is not None:
            raise ConflictError(Reason.REVOKED, "Mã truy cập của ứng dụng này đã bị thu hồi")
        client.revoked_at = now
        client.save()
        audit(actor, "api_client.revoke", f"api_client:{client.id}", {"name": client.name, "prefix": client.prefix},
              now=now)
    return ApiClient.get_by_id(client.id)


def authenticate(token: str, *, now: datetime) -> ApiClient | None:
    """Return the active client whose token this is, or None (unknown or revoked).

    Records ``last_used_at`` when the stored one is older than :data:`LAST_USED_RESOLUTION` (one conditional
    UPDATE, so concurrent requests do not pile up writes).
    """
    if not token.startswith(TOKEN_PREFIX):
        return None
    client = ApiClient.get_or_none(ApiClient.token_hash == digest(token))
    if client is None or client.revoked_at is not None:
        return None
    stale = now - LAST_USED_RESOLUTION
    if client.last_used_at is None or client.last_used_at <= stale:
        ApiClient.update(last_used_at=now).where(
            (ApiClient.id == client.id) & (ApiClient.last_used_at.is_null() | (ApiClient.last_used_at <= stale))
        ).execute()
        client.last_used_at = now
    return client


def client_to_dict(client: ApiClient) -> dict[str, Any]:
    """Return the JSON form of a client (never its token or the token's hash)."""
    return {
        "id": client.id,
        "name": client.name,
        "prefix": client.prefix,
        "scopes": sorted(client.scope_set),
        "created_by": client.created_by,
        "created_at": client.created_at.isoformat(),
        "last_used_at": client.last_used_at.isoformat() if client.last_used_at else None,
        "revoked_at": client.revoked_at.isoformat() if client.revoked_at else None,
    }


def current_client_id() -> int | None:
    """Return the id of the API client making the current request, or None (staff, or the operator's token)."""
    from central.auth import current_identity

    identity = current_identity()
    if identity is None or identity.scopes is None or not identity.username.startswith(CLIENT_ACTOR_PREFIX):
        return None
    client = ApiClient.get_or_none(ApiClient.name == identity.username[len(CLIENT_ACTOR_PREFIX):])
    return client.id if client is not None else None
