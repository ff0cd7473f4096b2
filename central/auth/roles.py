"""Staff roles and what they are called in the UI (Vietnamese first)."""

from __future__ import annotations

ADMINISTRATOR = "administrator"
ORGANISER = "organiser"
APPROVER = "approver"
REGISTRAR = "registrar"
GUARD = "guard"

ROLES: tuple[str, ...] = (ADMINISTRATOR, ORGANISER, APPROVER, REGISTRAR, GUARD)
"""Every role; an administrator passes every role check."""

ROLE_LABELS_VI: dict[str, str] = {
    ADMINISTRATOR: "Quản trị hệ thống",
    ORGANISER: "Chuyên viên văn phòng",
    APPROVER: "Lãnh đạo (duyệt thư mời)",
    REGISTRAR: "Cán bộ đăng ký của đơn vị",
    GUARD: "Bảo vệ",
}

STAFF_ROLES: tuple[str, ...] = (ORGANISER, APPROVER)
"""Roles that see meetings and invitations."""


def role_allows(role: str | None, allowed: tuple[str, ...]) -> bool:
    """Return True when a user with ``role`` may use something open to ``allowed`` roles."""
    return role is not None and (role == ADMINISTRATOR or role in allowed)
