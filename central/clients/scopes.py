"""What each scope of an API client lets it do: the API routes (by endpoint) it opens.

A client's token reaches only the endpoints listed here for one of its scopes (and ``/me``); every other route
answers 403 to it, whatever the route's role check would say. The staff roles do not apply to clients.
"""

from __future__ import annotations

ATTENDANCE_READ = "attendance:read"
MEETINGS_CREATE = "meetings:create"
INVITATIONS_DRAFT = "invitations:draft"

SCOPE_LABELS_VI: dict[str, str] = {
    ATTENDANCE_READ: "Xem danh sách tham dự",
    MEETINGS_CREATE: "Tạo cuộc họp",
    INVITATIONS_DRAFT: "Tạo dự thảo thư mời",
}
"""Every scope and what the admin page calls it (Vietnamese first)."""

SCOPES: tuple[str, ...] = tuple(SCOPE_LABELS_VI)

OPEN_TO_EVERY_CLIENT = frozenset({"api.me"})
"""Endpoints any client may call (``/me``: who am I)."""

ENDPOINT_SCOPES: dict[str, frozenset[str]] = {
    "api.get_attendance": frozenset({ATTENDANCE_READ}),
    "api.create_meeting": frozenset({MEETINGS_CREATE}),
    "api.get_meeting": frozenset({MEETINGS_CREATE, ATTENDANCE_READ}),
    "api.list_meetings": frozenset({MEETINGS_CREATE, ATTENDANCE_READ}),
    "api.list_venues": frozenset({MEETINGS_CREATE}),
    "api.draft_invitations": frozenset({INVITATIONS_DRAFT}),
    # POST /invitations makes a draft (issue 12): it is no way around the leader's approval.
    "api.create_invitation": frozenset({INVITATIONS_DRAFT}),
    "api.list_invitations": frozenset({INVITATIONS_DRAFT}),
    "api.get_invitation": frozenset({INVITATIONS_DRAFT}),
    "api.list_organisations": frozenset({INVITATIONS_DRAFT}),
}
"""Endpoint → the scopes any one of which opens it."""


def scope_allows(scopes: frozenset[str], endpoint: str | None) -> bool:
    """Return True when a client holding ``scopes`` may call ``endpoint`` (a Flask endpoint name)."""
    if endpoint is None:
        return False
    if endpoint in OPEN_TO_EVERY_CLIENT:
        return True
    return bool(ENDPOINT_SCOPES.get(endpoint, frozenset()) & scopes)
