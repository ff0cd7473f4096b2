"""Gates: registration with a per-gate token (shown once, stored hashed) and token authentication."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from central.core import validation as v
from central.core.audit import audit
from central.core.db import database
from central.core.errors import DuplicateError
from central.core.tokens import digest, matches
from central.gates.models import Gate


@dataclass(frozen=True)
class RegisteredGate:
    """A new gate and its token (the only time the token exists in clear)."""

    gate: Gate
    token: str


def register_gate(
    data: Mapping[str, Any], *, actor: str = "system", now: datetime | None = None
) -> RegisteredGate:
    """Validate and store a gate: ``gate_id``, ``site_id`` (ids), optional ``name``, ``direction`` (in).
    The registration is audited (``gate.register`` by ``actor``)."""
    fields = v.FieldCollector(data)
    gate_id = fields.take("gate_id", v.site_id)
    site_id = fields.take("site_id", v.site_id)
    name = fields.take("name", v.text, required=False, max_length=200)
    direction = fields.take("direction", v.choice, ("in", "out"), "in")
    fields.raise_if_any()
    token = secrets.token_urlsafe(32)
    with database.atomic():
        if Gate.select().where(Gate.gate_id == gate_id).exists():
            raise DuplicateError({"gate_id": "Cổng này đã được đăng ký"})
        gate = Gate.create(
            gate_id=gate_id,
            site_id=site_id,
            name=name or gate_id,
            direction=direction,
            token_hash=digest(token),
        )
        audit(actor, "gate.register", f"gate:{gate_id}", {"site_id": site_id, "direction": direction},
              now=now or datetime.now(UTC))
    return RegisteredGate(gate=gate, token=token)


def authenticate_gate(gate_id: str, token: str | None) -> Gate | None:
    """Return the gate when ``token`` is its token (constant-time compare), else None."""
    gate = Gate.get_or_none(Gate.gate_id == gate_id) if isinstance(gate_id, str) else None
    given = digest(token) if isinstance(token, str) else ""
    if not matches(gate.token_hash if gate is not None else None, given) or gate is None:
        return None
    return gate


def gate_to_dict(gate: Gate) -> dict[str, Any]:
    """Return the JSON form of a gate (never its token hash)."""
    return {
        "gate_id": gate.gate_id,
        "name": gate.name,
        "site_id": gate.site_id,
        "direction": gate.direction,
        "state": gate.state,
        "last_seen_at": gate.last_seen_at.isoformat() if gate.last_seen_at else None,
        "cache_seq": gate.cache_seq,
        "software_version": gate.software_version,
    }
