"""Invited organisations ("đơn vị")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from central import models
from central.services import validation as v
from central.services.errors import InvalidInputError


def create_organisation(data: Mapping[str, Any]) -> models.Organisation:
    """Validate and store an organisation: ``name`` (unique, required), optional ``email`` and ``phone``."""
    fields = v.FieldCollector(data)
    name = fields.take("name", v.text, required=True, max_length=200)
    email = fields.take("email", v.email, required=False)
    phone = fields.take("phone", v.phone)
    fields.raise_if_any()
    with models.database.atomic():
        if models.Organisation.select().where(models.Organisation.name == name).exists():
            raise InvalidInputError({"name": "Đơn vị này đã tồn tại"})
        return models.Organisation.create(name=name, email=email, phone=phone)


def organisation_to_dict(org: models.Organisation) -> dict[str, Any]:
    """Return the JSON form of an organisation."""
    return {"id": org.id, "name": org.name, "email": org.email, "phone": org.phone}
