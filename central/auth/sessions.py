"""Server-side sessions: the cookie holds a random token, the ``user_session`` table its SHA-256 and its life.

A session is valid while it is not ended (logout, password change, deactivation), younger than
``VAORA_SESSION_MAX_HOURS`` and seen within ``VAORA_SESSION_IDLE_MIN``. So a cookie copied before logout is worth
nothing after it, in every web process, and a changed password ends the account's other sessions.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from flask import has_request_context, session

from central.auth.models import UserSession
from central.core.tokens import digest

TOKEN_KEY = "sid"
"""The key of the session token in Flask's (signed) session cookie."""
TOUCH_EVERY = timedelta(minutes=1)
"""``seen_at`` is written at most this often per session (the idle timeout is counted in minutes)."""

KEEP_ROWS = timedelta(days=30)
"""Rows of sessions not seen for this long are deleted (they are long invalid)."""

ENDED = "ended"
IDLE = "idle"
LIFETIME = "lifetime"
UNKNOWN = "unknown"

LOGOUT = "logout"
PASSWORD_CHANGED = "password_changed"
DEACTIVATED = "deactivated"


def start_session(user_id: int, *, now: datetime) -> str:
    """Record a new session of ``user_id`` and return its token (for the cookie; only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    UserSession.delete().where(UserSession.seen_at < now - KEEP_ROWS).execute()
    UserSession.create(user=user_id, token_hash=digest(token), created_at=now, seen_at=now)
    return token


def session_problem(token: object, user_id: int | None, *, now: datetime, idle: timedelta,
                    lifetime: timedelta) -> str | None:
    """Return why the session of ``token`` is not valid for ``user_id`` (:data:`UNKNOWN`, :data:`ENDED`,
    :data:`IDLE`, :data:`LIFETIME`), or None when it is; a valid session is marked seen at ``now``."""
    if not isinstance(token, str) or not token or user_id is None:
        return UNKNOWN
    row = UserSession.get_or_none((UserSession.token_hash == digest(token)) & (UserSession.user == user_id))
    if row is None:
        return UNKNOWN
    if row.ended_at is not None:
        return ENDED
    problem = LIFETIME if now - row.created_at > lifetime else IDLE if now - row.seen_at > idle else None
    if problem is not None:
        end_session(token, now=now, reason=problem)
    elif now - row.seen_at >= TOUCH_EVERY:
        UserSession.update(seen_at=now).where(UserSession.id == row.id).execute()
    return problem


def end_session(token: object, *, now: datetime, reason: str) -> None:
    """End the session of ``token`` (nothing happens for an unknown or already ended one)."""
    if isinstance(token, str) and token:
        (UserSession.update(ended_at=now, end_reason=reason)
         .where((UserSession.token_hash == digest(token)) & UserSession.ended_at.is_null()).execute())


def end_user_sessions(user_id: int, *, now: datetime, reason: str, keep: str | None = None) -> int:
    """End every open session of ``user_id`` except the one of token ``keep``; return how many ended."""
    query = UserSession.update(ended_at=now, end_reason=reason).where(
        (UserSession.user == user_id) & UserSession.ended_at.is_null())
    if keep:
        query = query.where(UserSession.token_hash != digest(keep))
    return int(query.execute())


def current_token() -> str | None:
    """The session token of the current request, or None (no request, or not logged in)."""
    if not has_request_context():
        return None
    token = session.get(TOKEN_KEY)
    return token if isinstance(token, str) else None
