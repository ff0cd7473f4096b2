"""Staff accounts: creation, changes and password checks; every change is audited."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from central.auth.models import User
from central.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from central.auth.roles import REGISTRAR, ROLES
from central.core import validation as v
from central.core.audit import audit
from central.core.db import database
from central.core.errors import DuplicateError, InvalidInputError, NotFoundError
from central.invitations.models import Organisation
from protocols.reasons import Reason

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")


def username(value: Any) -> str:
    """Return a valid username: 3-64 lower-case letters, digits, '.', '_' or '-'."""
    if not isinstance(value, str) or not _USERNAME.fullmatch(value.strip()):
        raise v.FieldError("Tên đăng nhập gồm 3-64 chữ thường, số, '.', '_' hoặc '-'")
    return value.strip()


def password(value: Any) -> str:
    """Return an acceptable new password (10 to 256 characters)."""
    if not isinstance(value, str) or not MIN_PASSWORD_LENGTH <= len(value) <= MAX_PASSWORD_LENGTH:
        raise v.FieldError(f"Mật khẩu phải từ {MIN_PASSWORD_LENGTH} đến {MAX_PASSWORD_LENGTH} ký tự")
    return value


def _organisation(fields: v.FieldCollector, role: str | None) -> Organisation | None:
    raw = fields.data.get("organisation_id")
    if raw in (None, "", 0):
        if role == REGISTRAR:
            fields.add("organisation_id", "Cán bộ đăng ký phải thuộc một đơn vị")
        return None
    org_id = fields.take("organisation_id", v.positive_int)
    if org_id is None:
        return None
    org = Organisation.get_or_none(Organisation.id == org_id)
    if org is None:
        fields.add("organisation_id", "Không tìm thấy đơn vị")
    return org


def create_user(data: Mapping[str, Any], *, actor: str, now: datetime) -> User:
    """Create a staff user: ``username``, ``password``, ``role``, optional ``full_name``, ``email``,
    ``organisation_id`` (required for unit registrars)."""
    fields = v.FieldCollector(data)
    name = fields.take("username", username)
    secret = fields.take("password", password)
    role = fields.take("role", v.choice, ROLES)
    full_name = fields.take("full_name", v.text, required=False, max_length=120)
    email = fields.take("email", v.email, required=False)
    org = _organisation(fields, role)
    fields.raise_if_any()
    if User.select().where(User.username == name).exists():
        raise DuplicateError({"username": "Tên đăng nhập đã tồn tại"})
    with database.atomic():
        user = User.create(
            username=name,
            full_name=full_name,
            email=email,
            role=role,
            organisation=org,
            password_hash=hash_password(secret),
            created_at=now,
        )
        audit(actor, "user.create", f"user:{user.id}", {"username": name, "role": role}, now=now)
    return user


def update_user(user_id: int, data: Mapping[str, Any], *, actor: str, now: datetime) -> User:
    """Change a user's ``role``, ``full_name``, ``email``, ``organisation_id``, ``active`` or ``password``
    (only the keys present)."""
    user = get_user(user_id)
    fields = v.FieldCollector(data)
    changes: dict[str, Any] = {}
    if "role" in data:
        changes["role"] = fields.take("role", v.choice, ROLES)
    if "full_name" in data:
        changes["full_name"] = fields.take("full_name", v.text, required=False, max_length=120)
    if "email" in data:
        changes["email"] = fields.take("email", v.email, required=False)
    if "organisation_id" in data or changes.get("role") == REGISTRAR:
        changes["organisation"] = _organisation(fields, changes.get("role", user.role))
    if "active" in data:
        if not isinstance(data["active"], bool):
            fields.add("active", "Phải là true hoặc false")
        changes["active"] = data["active"]
    new_password = fields.take("password", password) if data.get("password") else None
    fields.raise_if_any()
    with database.atomic():
        for key, value in changes.items():
            setattr(user, key, value)
        if new_password:
            user.password_hash = hash_password(new_password)
        user.save()
        shown = {k: (v_.id if isinstance(v_, Organisation) else v_) for k, v_ in changes.items()}
        if new_password:
            shown["password"] = "changed"
        audit(actor, "user.update", f"user:{user.id}", shown, now=now)
    return user


def get_user(user_id: int) -> User:
    """Return the user or raise :class:`NotFoundError`."""
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy người dùng")
    return user


def authenticate(name: str, secret: str, *, now: datetime) -> User | None:
    """Return the active user whose password matches, else None (same work for unknown names).

    A successful login is audited and the hash upgraded when its parameters are outdated.
    """
    user = None
    if isinstance(name, str) and len(name) <= 64:
        user = User.get_or_none(User.username == name.strip().lower())
    if user is None:
        verify_password(dummy_hash(), secret)
        return None
    if not verify_password(user.password_hash, secret) or not user.active:
        audit(user.username, "auth.login_failed", f"user:{user.id}", now=now)
        return None
    user.last_login_at = now
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(secret)
    user.save()
    audit(user.username, "auth.login", f"user:{user.id}", now=now)
    return user


def user_to_dict(user: User) -> dict[str, Any]:
    """Return the JSON form of a user (never the password hash)."""
    return {
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "email": user.email,
        "role": user.role,
        "organisation_id": user.organisation_id,
        "active": user.active,
        "created_at": user.created_at.isoformat(),
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
    }


def require_fields(data: Mapping[str, Any], *names: str) -> None:
    """Raise ``InvalidInputError`` when a required key is absent (for PATCH-style bodies)."""
    missing = {name: "Không được để trống" for name in names if name not in data}
    if missing:
        raise InvalidInputError(missing)
