"""Protocol order ("thứ tự lễ tân"): who is listed, seated and badged first.

People are ordered by their organisation's rank (``Organisation.protocol_rank``, lower first; unranked after, by
name), then by their position in the office's order of positions (one per line, e.g. "Chủ tịch" before "Phó Chủ
tịch"; a position matches the longest configured one it starts with, so "Phó Giám đốc Sở" is a "Phó Giám đốc";
unmatched positions come last), then by name. :func:`protocol_key` is the one rule; badges and name cards call it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from central.core import validation as v
from central.core.audit import audit
from central.core.db import write_transaction
from central.core.errors import InvalidInputError
from central.invitations.models import Organisation, ProtocolSetting

DEFAULT_POSITIONS = (
    "Bí thư", "Phó Bí thư", "Chủ tịch", "Phó Chủ tịch", "Giám đốc", "Phó Giám đốc", "Chánh Văn phòng",
    "Phó Chánh Văn phòng", "Trưởng ban", "Phó Trưởng ban", "Trưởng phòng", "Phó Trưởng phòng", "Chuyên viên chính",
    "Chuyên viên",
)
"""The order of positions until the office sets its own."""

MAX_RANK = 9999


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def position_order() -> list[str]:
    """The office's order of positions (:data:`DEFAULT_POSITIONS` until it sets one)."""
    row = ProtocolSetting.get_or_none()
    lines = [line.strip() for line in (row.position_order if row else "").splitlines() if line.strip()]
    return lines or list(DEFAULT_POSITIONS)


def position_rank(position: str, order: Sequence[str]) -> int:
    """The index of the longest entry of ``order`` that ``position`` starts with; ``len(order)`` for none."""
    folded = _fold(position)
    best, best_len = len(order), -1
    for index, entry in enumerate(order):
        key = _fold(entry)
        if key and (folded == key or folded.startswith(key + " ")) and len(key) > best_len:
            best, best_len = index, len(key)
    return best


def protocol_key(org_rank: int | None, org_name: str, position: str, name: str,
                 order: Sequence[str]) -> tuple[Any, ...]:
    """The sort key of one person in protocol order (see the module's docstring)."""
    return (org_rank is None, org_rank or 0, _fold(org_name), position_rank(position, order), _fold(name))


def save_protocol(positions: Any, ranks: Mapping[int, Any], *, actor: str, now: datetime) -> None:
    """Store the order of positions (text, one per line) and organisations' ranks (id → 1..9999 or empty)."""
    fields = v.FieldCollector({"position_order": positions})
    text = fields.take("position_order", v.multiline_text, required=False, max_length=4000)
    clean: dict[int, int | None] = {}
    for org_id, raw in ranks.items():
        value = raw.strip() if isinstance(raw, str) else raw
        if value in (None, ""):
            clean[org_id] = None
        elif isinstance(value, str) and value.isdigit() and 1 <= int(value) <= MAX_RANK:
            clean[org_id] = int(value)
        elif isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_RANK:
            clean[org_id] = value
        else:
            fields.add(f"rank-{org_id}", f"Thứ tự phải là số từ 1 đến {MAX_RANK}")
    fields.raise_if_any()
    with write_transaction():
        known = {org.id for org in Organisation.select(Organisation.id).where(Organisation.id.in_(list(clean)))}
        if set(clean) - known:
            raise InvalidInputError({"ranks": "Không tìm thấy đơn vị"})
        row = ProtocolSetting.get_or_none()
        if row is None:
            ProtocolSetting.create(position_order=text, updated_at=now)
        else:
            row.position_order, row.updated_at = text, now
            row.save()
        for org_id, rank in clean.items():
            Organisation.update(protocol_rank=rank).where(Organisation.id == org_id).execute()
        audit(actor, "protocol.update", "protocol", {"positions": text.splitlines(),
                                                     "ranks": {str(k): r for k, r in clean.items()}}, now=now)
