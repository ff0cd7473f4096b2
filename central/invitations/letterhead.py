"""The bodies that issue giấy mời (Decree 30/2020): their letterhead, number symbols, place, signer and "Nơi nhận".

An administrator configures one or more issuing bodies; one is the default. An invitation carries the letterhead of
its own body (chosen when drafting) or, without one, of the default body; with no body configured at all the letter
falls back to :data:`FALLBACK` and the number to ``VAORA_INVITATION_FORMAT`` (``{seq}/GM-UBND`` by default).
The number's symbol is fixed on approval (``12/GM-UBND``): changing a body's symbols later renames no number, so
numbers issued before (``3/TM-UBND``) stay valid. Every change is audited.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from central.core import validation as v
from central.core.audit import audit
from central.core.db import write_transaction
from central.core.errors import DuplicateError, NotFoundError
from central.invitations.letter import OFFICE, Letterhead
from central.invitations.models import Invitation, IssuingBody
from protocols.reasons import Reason

SYMBOL = re.compile(r"^[0-9A-ZĐ&.]+(?:-[0-9A-ZĐ&.]+)*$")
"""A document's or a body's symbol: capitals (Đ too), digits, ``&`` and ``.``, parts joined by ``-``."""

FALLBACK = OFFICE
"""The letterhead of an office that has configured no issuing body yet: "UBND" / "VĂN PHÒNG"."""

TEXT_FIELDS = {  # field -> (required, max length)
    "parent_name": (False, 200), "name": (True, 200), "place": (False, 100), "signing_authority": (False, 120),
    "signer_position": (False, 120), "signer_name": (False, 120),
}


def _symbol(value: Any, *, max_length: int) -> str:
    text = v.text(value, required=True, max_length=max_length).upper()
    if not SYMBOL.match(text):
        raise v.FieldError("Chỉ gồm chữ in hoa, chữ số, dấu & và dấu chấm, nối bằng dấu gạch ngang")
    return text


def _clean(data: Mapping[str, Any]) -> dict[str, Any]:
    fields = v.FieldCollector(data)
    clean: dict[str, Any] = {}
    for name, (required, max_length) in TEXT_FIELDS.items():
        clean[name] = fields.take(name, v.text, required=required, max_length=max_length)
    clean["doc_symbol"] = fields.take("doc_symbol", _symbol, max_length=16)
    clean["body_symbol"] = fields.take("body_symbol", _symbol, max_length=32)
    clean["recipients"] = fields.take("recipients", v.multiline_text, required=False, max_length=2000)
    clean["is_default"] = bool(data.get("is_default"))
    fields.raise_if_any()
    return clean


def _check_name_free(name: str, body_id: int | None) -> None:
    query = IssuingBody.select().where(IssuingBody.name == name)
    if body_id is not None:
        query = query.where(IssuingBody.id != body_id)
    if query.exists():
        raise DuplicateError({"name": "Đã có cơ quan ban hành tên này"})


def _make_default(body: IssuingBody) -> None:
    IssuingBody.update(is_default=False).where(IssuingBody.id != body.id).execute()


def list_bodies() -> list[IssuingBody]:
    """Every issuing body, the default first, then by name."""
    return list(IssuingBody.select().order_by(IssuingBody.is_default.desc(), IssuingBody.name))


def get_body(body_id: int) -> IssuingBody:
    """Return the issuing body or raise :class:`NotFoundError`."""
    body = IssuingBody.get_or_none(IssuingBody.id == body_id)
    if body is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy cơ quan ban hành")
    return body


def create_body(data: Mapping[str, Any], *, actor: str, now: datetime) -> IssuingBody:
    """Validate and store an issuing body; the first one, or one marked ``is_default``, becomes the default."""
    clean = _clean(data)
    with write_transaction():
        _check_name_free(clean["name"], None)
        if not IssuingBody.select().exists():
            clean["is_default"] = True
        body = IssuingBody.create(**clean, created_at=now)
        if body.is_default:
            _make_default(body)
        audit(actor, "issuing_body.create", f"issuing_body:{body.id}", clean, now=now)
    return body


def update_body(body_id: int, data: Mapping[str, Any], *, actor: str, now: datetime) -> IssuingBody:
    """Change an issuing body; the default stays the default (another body takes it by being marked so)."""
    clean = _clean(data)
    with write_transaction():
        body = get_body(body_id)
        _check_name_free(clean["name"], body.id)
        clean["is_default"] = clean["is_default"] or body.is_default
        for name, value in clean.items():
            setattr(body, name, value)
        body.save()
        if body.is_default:
            _make_default(body)
        audit(actor, "issuing_body.update", f"issuing_body:{body.id}", clean, now=now)
    return body


def default_body() -> IssuingBody | None:
    """The default issuing body, if the office configured one."""
    return IssuingBody.get_or_none(IssuingBody.is_default == True)  # noqa: E712 (a peewee expression)


def body_of(invitation: Invitation) -> IssuingBody | None:
    """The body whose letterhead ``invitation`` carries: its own, else the default."""
    if invitation.issuing_body_id is not None:
        own = IssuingBody.get_or_none(IssuingBody.id == invitation.issuing_body_id)
        if own is not None:
            return own
    return default_body()


def letterhead_of(body: IssuingBody | None) -> Letterhead:
    """The letter's plain data for ``body`` (:data:`FALLBACK` for none)."""
    if body is None:
        return FALLBACK
    return Letterhead(
        parent_name=body.parent_name, name=body.name, place=body.place, signing_authority=body.signing_authority,
        signer_position=body.signer_position, signer_name=body.signer_name,
        recipients=tuple(line.strip() for line in body.recipients.splitlines() if line.strip()),
    )


def number_format_of(invitation: Invitation, fallback: str) -> str:
    """The format of ``invitation``'s number (``{seq}/GM-UBND``): its body's symbols, else ``fallback``."""
    body = body_of(invitation)
    if body is None:
        return fallback
    return "{seq}/" + f"{body.doc_symbol}-{body.body_symbol}".replace("{", "{{").replace("}", "}}")


def unnumbered(number_format: str, year: int) -> str:
    """How a draft's number reads before approval: the symbol with room for the number (``     /GM-UBND``)."""
    blank = re.sub(r"\{seq(?:[:!][^}]*)?\}", "\u00a0" * 6, number_format)
    try:
        return blank.format(year=year)
    except (KeyError, ValueError, IndexError):
        return blank


PREVIEW_LINK = "(đường dẫn đăng ký riêng của đơn vị, gửi kèm khi phát hành)"


def preview_pdf(invitation: Invitation, *, fallback_format: str, font: Path, now: datetime) -> bytes:
    """The giấy mời of ``invitation`` as the leader sees it before approving: its body's letterhead, today's date
    and the number's symbol with room for the number (a numbered one: its number and approval date). The link
    carries the invitation's secret, which exists only in the messages sent, so the preview says where it goes."""
    from central.invitations.deliveries import letter_of
    from central.invitations.letter import render_pdf
    from central.invitations.services import REGISTER_TZ

    letter = letter_of(invitation, PREVIEW_LINK, now=now)
    if not invitation.number:
        year = now.astimezone(REGISTER_TZ).year
        letter = replace(letter, number=unnumbered(number_format_of(invitation, fallback_format), year), draft=True)
    return render_pdf(letter, font)
