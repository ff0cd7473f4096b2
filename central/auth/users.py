"""Staff accounts: creation, changes and password checks; every change is audited.

- :func:`authenticate` is the one login check: the throttle first (no argon2 work for a refused attempt), then
  the password, then the throttle's record.
- A password change or a deactivation ends the account's other sessions (:mod:`central.auth.sessions`).
- :func:`ensure_an_administrator_remains` keeps at least one active administrator, on every path that changes a
  role or the active flag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from central.auth import sessions, throttle
from central.auth.models import User
from central.auth.passwords import dummy_hash, hash_password, needs_rehash, password_problem, verify_password
from central.auth.roles import ADMINISTRATOR, REGISTRAR, ROLES
from central.auth.throttle import LoginLimits, Refusal
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


def password(value: Any, username: str | None = None) -> str:
    """Return an acceptable new password for ``username`` (:func:`central.auth.passwords.password_problem`)."""
    problem = password_problem(value, username)
    if problem is not None:
        raise v.FieldError(problem)
    return str(value)


LAST_ADMINISTRATOR = "Phải còn ít nhất một quản trị hệ thống đang hoạt động"


def ensure_an_administrator_remains(user: User, *, role: str, active: bool) -> None:
    """Raise :class:`InvalidInputError` when giving ``user`` this ``role`` and ``active`` flag would leave no
    active administrator. Call it inside the transaction that makes the change: on PostgreSQL it locks the
    administrators' rows (in id order), so two concurrent demotions cannot each see the other remain."""
    if user.role != ADMINISTRATOR or not user.active or (role == ADMINISTRATOR and active):
        return
    query = (User.select(User.id).where((User.role == ADMINISTRATOR) & (User.active == True))  # noqa: E712
             .order_by(User.id))
    if getattr(database.obj, "for_update", False):
        query = query.for_update()
    if not [row.id for row in query if row.id != user.id]:
        raise InvalidInputError({"role" if role != ADMINISTRATOR else "active": LAST_ADMINISTRATOR})


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
    """Create a staff user: ``username``, ``password``, ``role``, optional ``full_name``, ``position``, ``email``,
    ``organisation_id`` (required for unit registrars)."""
    fields = v.FieldCollector(data)
    name = fields.take("username", username)
    secret = fields.take("password", password, name)
    role = fields.take("role", v.choice, ROLES)
    full_name = fields.take("full_name", v.text, required=False, max_length=120)
    position = fields.take("position", v.text, required=False, max_length=120)
    email = fields.take("email", v.email, required=False)
    org = _organisation(fields, role)
    fields.raise_if_any()
    if User.select().where(User.username == name).exists():
        raise DuplicateError({"username": "Tên đăng nhập đã tồn tại"})
    password_hash = hash_password(secret)  # outside the transaction: it may wait for a hashing slot
    with database.atomic():
        user = User.create(
            username=name,
            full_name=full_name,
            position=position or "",
            email=email,
            role=role,
            organisation=org,
            password_hash=password_hash,
            created_at=now,
        )
        audit(actor, "user.create", f"user:{user.id}", {"username": name, "role": role}, now=now)
    return user


def update_user(user_id: int, data: Mapping[str, Any], *, actor: str, now: datetime,
                keep_session: str | None = None) -> User:
    """Change a user's ``role``, ``full_name``, ``position``, ``email``, ``organisation_id``, ``active`` or ``password``
    (only the keys present).

    A new password or a deactivation ends every session of the user but ``keep_session`` (the caller's own
    session token, when callers change their own password). The last active administrator keeps the role
    and stays active.
    """
    user = get_user(user_id)
    fields = v.FieldCollector(data)
    changes: dict[str, Any] = {}
    if "role" in data:
        changes["role"] = fields.take("role", v.choice, ROLES)
    if "full_name" in data:
        changes["full_name"] = fields.take("full_name", v.text, required=False, max_length=120)
    if "position" in data:
        changes["position"] = fields.take("position", v.text, required=False, max_length=120) or ""
    if "email" in data:
        changes["email"] = fields.take("email", v.email, required=False)
    if "organisation_id" in data or changes.get("role") == REGISTRAR:
        changes["organisation"] = _organisation(fields, changes.get("role", user.role))
    if "active" in data:
        if not isinstance(data["active"], bool):
            fields.add("active", "Phải là true hoặc false")
        changes["active"] = data["active"]
    new_password = fields.take("password", password, user.username) if data.get("password") else None
    fields.raise_if_any()
    new_hash = hash_password(new_password) if new_password else None  # outside the transaction, like creation's
    with database.atomic():
        user = get_user(user_id)  # read again under the transaction's lock
        ensure_an_administrator_remains(user, role=changes.get("role", user.role),
                                        active=changes.get("active", user.active))
        deactivated = user.active and changes.get("active") is False
        for key, value in changes.items():
            setattr(user, key, value)
        if new_hash:
            user.password_hash = new_hash
        user.save()
        shown = {k: (v_.id if isinstance(v_, Organisation) else v_) for k, v_ in changes.items()}
        if new_hash or deactivated:
            reason = sessions.DEACTIVATED if deactivated else sessions.PASSWORD_CHANGED
            shown["sessions_ended"] = sessions.end_user_sessions(user.id, now=now, reason=reason,
                                                                 keep=None if deactivated else keep_session)
        if new_hash:
            shown["password"] = "changed"
        audit(actor, "user.update", f"user:{user.id}", shown, now=now)
    return user


def get_user(user_id: int) -> User:
    """Return the user or raise :class:`NotFoundError`."""
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy người dùng")
    return user


class LoginThrottledError(Exception):
    """Logins for this name or from this address are refused for now; ``refusal`` says why and until when."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        self.reason = refusal.reason
        super().__init__(f"{refusal.reason} until {refusal.until.isoformat()}")


def authenticate(name: str, secret: str, *, now: datetime, address: str | None = None,
                 limits: LoginLimits | None = None) -> User | None:
    """Return the active user whose password matches, else None (same work for unknown names).

    The login throttle (``limits``, the defaults when None; counted per name and per client ``address``) is
    checked first: a refused attempt raises :class:`LoginThrottledError` before any password work, whatever the
    password. Every failure is counted and a lockout it starts is audited (``auth.lockout``). The password check
    may raise :class:`central.auth.passwords.HashingBusyError`. A successful login is audited, clears the name's
    failures and upgrades the hash when its parameters are outdated.
    """
    limits = limits or LoginLimits()
    key, where = throttle.account_key(name), throttle.address_key(address)
    refused = throttle.refusal(key, where, now=now, limits=limits)
    if refused is not None:
        raise LoginThrottledError(refused)
    user = None
    if isinstance(name, str) and len(name) <= 64:
        user = User.get_or_none(User.username == key)
    if user is None:
        verify_password(dummy_hash(), secret)
    elif verify_password(user.password_hash, secret) and user.active:
        throttle.record_success(key)
        user.last_login_at = now
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(secret)
        user.save()
        audit(user.username, "auth.login", f"user:{user.id}", now=now)
        return user
    else:
        audit(user.username, "auth.login_failed", f"user:{user.id}", {"address": where}, now=now)
    for started in throttle.record_failure(key, where, now=now, limits=limits):
        audit("anonymous" if user is None else user.username, "auth.lockout",
              f"user:{user.id}" if user is not None else f"login:{key}",
              {"reason": started.reason, "until": started.until, "address": where}, now=now)
    return None


def user_to_dict(user: User) -> dict[str, Any]:
    """Return the JSON form of a user (never the password hash)."""
    return {
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "position": user.position,
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


def person_label(username: str | None, people: Mapping[str, User] | None = None) -> str:
    """How pages name a staff member: "Nguyễn Thị Lan, Chánh Văn phòng" (full name and position), the username
    when the account has no full name, "—" for nobody. ``people`` (username → user) saves a query per name."""
    if not username:
        return "—"
    user = people.get(username) if people is not None else User.get_or_none(User.username == username)
    if user is None or not user.full_name:
        return username
    return f"{user.full_name}, {user.position}" if user.position else user.full_name
