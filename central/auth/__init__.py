"""Authentication and roles for pages and the JSON API.

- Staff log in with a username and password (Flask-Login session, argon2 hashes).
- The JSON API also accepts the configured Bearer API token as the ``integration`` identity (organiser
  rights), and a logged-in session (then unsafe methods need the CSRF token in ``X-CSRFToken``).
- ``login_required`` and ``roles_required(*roles)`` guard views; an administrator passes every role check.
  Pages answer 302 to the login page / 403; API routes answer 401 / 403 as JSON.
- Every staff session is also known to the server (``central.auth.sessions``): a request whose session was
  ended (logout, password change, deactivation), is older than ``VAORA_SESSION_MAX_HOURS`` or idle for longer
  than ``VAORA_SESSION_IDLE_MIN`` (by the app's clock) is logged out: pages redirect to the login page, the API
  answers 401.
- Password checks run at most ``VAORA_PASSWORD_HASH_CONCURRENCY`` at once per process
  (``central.auth.passwords``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app, flash, g, jsonify, redirect, request, session, url_for
from flask_babel import gettext
from flask_login import LoginManager, current_user, logout_user

from central.auth.models import User
from central.auth.roles import ADMINISTRATOR, ORGANISER, ROLES, role_allows

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("auth", __name__, template_folder="templates")
login_manager = LoginManager()

INTEGRATION = "api-token"
"""The actor name of requests authenticated by the API token."""


@dataclass(frozen=True)
class Identity:
    """Who is making the request: a staff user (``user_id`` set) or the API-token integration."""

    username: str
    role: str
    full_name: str = ""
    user_id: int | None = None
    position: str = ""
    organisation_id: int | None = None

    # Flask-Login's user interface.
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False
    scopes: frozenset[str] | None = None
    """An API client's scopes (``central.clients.scopes``); None for staff and the operator's token."""

    def get_id(self) -> str:
        """Return the id Flask-Login stores in the session."""
        return str(self.user_id)

    @property
    def actor(self) -> str:
        """The name written to the audit log."""
        return self.username

    def has_role(self, *roles: str) -> bool:
        """Return True when this identity may act in one of ``roles``."""
        return role_allows(self.role, roles)


def identity_of(user: User) -> Identity:
    """Return the identity of a stored user."""
    return Identity(
        username=user.username,
        role=user.role,
        full_name=user.full_name,
        user_id=user.id,
        position=user.position,
        organisation_id=user.organisation_id,
    )


INTEGRATION_IDENTITY = Identity(username=INTEGRATION, role=ORGANISER, full_name="API integration")


@login_manager.user_loader
def _load_user(user_id: str) -> Identity | None:
    if not user_id.isdigit():
        return None
    user = User.get_or_none(User.id == int(user_id))
    if user is None or not user.active or user.role not in ROLES:
        return None
    return identity_of(user)


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _bearer_identity() -> Identity | None:
    """The identity of the request's Bearer token: an active API client's (``client:<name>``, with its scopes),
    or the operator's configured ``VAORA_API_TOKEN`` (the integration, organiser rights); None otherwise."""
    from central.api.helpers import bearer_token
    from central.clients.services import CLIENT_ACTOR_PREFIX, authenticate

    given = bearer_token()
    if given is None:
        return None
    ctx = current_app.extensions["vaora"]
    client = authenticate(given, now=ctx.clock())
    if client is not None:
        return Identity(username=CLIENT_ACTOR_PREFIX + client.name, role=ORGANISER, full_name=client.name,
                        scopes=client.scope_set)
    expected = ctx.config.api_token
    if expected and hmac.compare_digest(expected.encode(), given.encode()):
        return INTEGRATION_IDENTITY
    return None


def current_identity() -> Identity | None:
    """Return who is making the request (API token first on API routes, then the session), or None."""
    if "identity" in g:
        return g.identity
    identity: Identity | None = None
    if _is_api() and request.headers.get("Authorization"):
        identity = _bearer_identity()
        g.via_token = identity is not None
    elif current_user.is_authenticated:
        identity = current_user._get_current_object()
    g.identity = identity
    return identity


def current_actor() -> str:
    """Return the audit actor of the request (``anonymous`` when nobody is logged in)."""
    identity = current_identity()
    return identity.actor if identity is not None else "anonymous"


def current_role() -> str | None:
    """Return the role of who is making the request (None when nobody is logged in)."""
    identity = current_identity()
    return identity.role if identity is not None else None


def _unauthenticated() -> Any:
    if _is_api():
        from central.api.helpers import unauthorized

        return unauthorized()
    return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))


def _forbidden() -> Any:
    if _is_api():
        body = {"error": "forbidden", "reason": "forbidden", "message": "Bạn không có quyền thực hiện thao tác này"}
        return jsonify(body), 403
    from flask import abort

    abort(403)


def _check_api_csrf() -> None:
    """Session-authenticated API calls that change state must carry the CSRF token (token calls need not)."""
    if _is_api() and not g.get("via_token") and request.method not in {"GET", "HEAD", "OPTIONS"}:
        current_app.extensions["csrf"].protect()


def login_required(view: F) -> F:
    """Allow the view to any logged-in identity."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_identity() is None:
            return _unauthenticated()
        _check_api_csrf()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def roles_required(*roles: str) -> Callable[[F], F]:
    """Allow the view to identities with one of ``roles`` (administrators always)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            identity = current_identity()
            if identity is None:
                return _unauthenticated()
            if not identity.has_role(*roles):
                return _forbidden()
            _check_api_csrf()
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def admin_required(view: F) -> F:
    """Allow the view to administrators only."""
    return roles_required(ADMINISTRATOR)(view)


def _check_session() -> None:
    """Log out a session the server no longer knows as valid: ended, past its absolute lifetime, or idle for
    longer than the configured time (measured with the app's clock)."""
    from central.auth import sessions

    if _is_api() and request.headers.get("Authorization"):
        return
    if not current_user.is_authenticated:
        return
    ctx = current_app.extensions["vaora"]
    now: datetime = ctx.clock()
    problem = sessions.session_problem(
        session.get(sessions.TOKEN_KEY), current_user.user_id, now=now,
        idle=timedelta(minutes=ctx.config.session_idle_min), lifetime=timedelta(hours=ctx.config.session_max_hours))
    if problem is None:
        return
    logout_user()
    session.pop(sessions.TOKEN_KEY, None)
    g.pop("identity", None)
    if problem in {sessions.IDLE, sessions.LIFETIME}:
        flash(gettext("Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại."), "warning")
    else:
        flash(gettext("Phiên đăng nhập đã kết thúc, vui lòng đăng nhập lại."), "warning")


def init_auth(app: Flask) -> None:
    """Set up Flask-Login, the password hashing cap and the server-side session check, and register the
    login pages."""
    from central.auth.passwords import configure_hashing

    configure_hashing(app.extensions["vaora"].config.password_hash_concurrency)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    app.before_request(_check_session)
    from central.auth import views  # noqa: F401 - registers the routes on bp

    app.register_blueprint(bp)
