"""Invited organisations ("đơn vị") with their leader's and office's contacts; changes are audited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from central.core import validation as v
from central.core.audit import audit
from central.core.db import database, tuples, write_transaction
from central.core.errors import DuplicateError, InvalidInputError, NotFoundError, ServiceError
from central.invitations.models import Organisation
from protocols.logs import mask_email, mask_phone
from protocols.reasons import Reason

CONTACT_FIELDS = ("email", "phone", "leader_email", "leader_phone", "office_email", "office_phone")


def _clean(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    fields = v.FieldCollector(data)
    clean: dict[str, Any] = {}
    if not partial or "name" in data:
        clean["name"] = fields.take("name", v.text, required=True, max_length=200)
    if not partial or "leader_name" in data:
        clean["leader_name"] = fields.take("leader_name", v.text, required=False, max_length=120) or ""
    for name in CONTACT_FIELDS:
        if not partial or name in data:
            if name.endswith("phone"):
                clean[name] = fields.take(name, v.phone)
            else:
                clean[name] = fields.take(name, v.email, required=False)
    fields.raise_if_any()
    return clean


def _masked(clean: Mapping[str, Any]) -> dict[str, Any]:
    shown = {}
    for key, value in clean.items():
        if key.endswith("phone"):
            shown[key] = mask_phone(value) if value else None
        elif key.endswith("email"):
            shown[key] = mask_email(value) if value else None
        else:
            shown[key] = value
    return shown


def check_organisations(rows: Sequence[Mapping[str, Any]]) -> list[tuple[dict[str, Any] | None, ServiceError | None]]:
    """The rules of a new organisation, for every path (the admin page, the JSON API, the import): one verdict
    per row, ``(clean, None)`` or ``(None, error)``; nothing is written. A name must be new, in the table and
    among the rows (``DuplicateError``); the fields must be valid (``InvalidInputError``)."""
    taken = {name.casefold() for (name,) in tuples(Organisation.select(Organisation.name))}
    verdicts: list[tuple[dict[str, Any] | None, ServiceError | None]] = []
    for data in rows:
        try:
            clean = _clean(data, partial=False)
        except InvalidInputError as exc:
            verdicts.append((None, exc))
            continue
        if clean["name"].casefold() in taken:
            verdicts.append((None, DuplicateError({"name": "Đơn vị này đã tồn tại"})))
            continue
        taken.add(clean["name"].casefold())
        verdicts.append((clean, None))
    return verdicts


def create_organisation(
    data: Mapping[str, Any], *, actor: str = "system", now: datetime | None = None
) -> Organisation:
    """Validate and store an organisation: ``name`` (unique, required), optional ``email``, ``phone``,
    ``leader_name``, ``leader_email``, ``leader_phone``, ``office_email``, ``office_phone``."""
    now = now or datetime.now(UTC)
    with database.atomic():
        ((clean, error),) = check_organisations([data])
        if error is not None:
            raise error
        assert clean is not None
        org = Organisation.create(**clean)
        audit(actor, "organisation.create", f"organisation:{org.id}", _masked(clean), now=now)
    return org


ORGANISATION_COLUMNS: dict[str, str] = {
    "name": "Tên đơn vị",
    "leader_name": "Lãnh đạo",
    "phone": "Số điện thoại",
    "email": "Email",
}
"""The organisation list's columns: field → Vietnamese header (the import template's, in this order)."""


def check_organisation_rows(rows: Sequence[Any], *, letters: Mapping[str, str] | None = None,
                            problems: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Apply :func:`check_organisations` to imported rows (:class:`central.registration.imports.Row`); return
    their clean fields or raise ``RowsRefusedError`` naming every bad row and cell."""
    from central.registration import imports

    letters = letters or {name: imports.column_letter(i) for i, name in enumerate(ORGANISATION_COLUMNS)}
    found = list(problems)
    verdicts = check_organisations([row.values for row in rows])
    for row, (_clean_row, error) in zip(rows, verdicts, strict=True):
        if error is not None:
            found.extend(imports.problems_of(row, error, letters, ORGANISATION_COLUMNS))
    if found:
        found.sort(key=imports.problem_order)
        raise imports.RowsRefusedError(found)
    return [clean for clean, _error in verdicts if clean is not None]


def check_organisation_file(data: bytes) -> list[Any]:
    """Read an organisation list (XLSX or CSV) and check every row, writing nothing; return the rows."""
    from central.registration import imports

    table = imports.read_table(data, ORGANISATION_COLUMNS, ("name",))
    check_organisation_rows(table.rows, letters=table.letters, problems=table.problems)
    return table.rows


def import_organisations(rows: Sequence[Any], *, actor: str, now: datetime) -> list[Organisation]:
    """Store every row as an organisation, all or none (the rules are checked again in the transaction)."""
    with write_transaction():
        cleans = check_organisation_rows(rows)
        created = []
        for clean in cleans:
            org = Organisation.create(**clean)
            audit(actor, "organisation.create", f"organisation:{org.id}", _masked(clean), now=now)
            created.append(org)
        audit(actor, "organisation.import", "organisation:*", {"count": len(created)}, now=now)
    return created


def update_organisation(
    org_id: int, data: Mapping[str, Any], *, actor: str, now: datetime
) -> Organisation:
    """Change the given fields of an organisation."""
    org = get_organisation(org_id)
    clean = _clean(data, partial=True)
    with database.atomic():
        if "name" in clean and clean["name"] != org.name and Organisation.select().where(
            Organisation.name == clean["name"]
        ).exists():
            raise DuplicateError({"name": "Đơn vị này đã tồn tại"})
        for key, value in clean.items():
            setattr(org, key, value)
        org.save()
        audit(actor, "organisation.update", f"organisation:{org.id}", _masked(clean), now=now)
    return org


def get_organisation(org_id: int) -> Organisation:
    """Return the organisation or raise :class:`NotFoundError`."""
    org = Organisation.get_or_none(Organisation.id == org_id)
    if org is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy đơn vị")
    return org


def list_organisations() -> list[Organisation]:
    """Return every organisation by name."""
    return list(Organisation.select().order_by(Organisation.name))


def invitation_email(org: Organisation) -> str | None:
    """Where an invitation e-mail goes: the office, else the leader, else the general address."""
    return org.office_email or org.leader_email or org.email


def invitation_phones(org: Organisation) -> list[str]:
    """Where invitation SMS go: the leader's and the office's numbers (or the general one), no repeats."""
    phones = [p for p in (org.leader_phone, org.office_phone) if p] or ([org.phone] if org.phone else [])
    return list(dict.fromkeys(phones))


def organisation_to_dict(org: Organisation) -> dict[str, Any]:
    """Return the JSON form of an organisation."""
    return {
        "id": org.id,
        "name": org.name,
        "email": org.email,
        "phone": org.phone,
        "leader_name": org.leader_name,
        "leader_email": org.leader_email,
        "leader_phone": org.leader_phone,
        "office_email": org.office_email,
        "office_phone": org.office_phone,
    }
