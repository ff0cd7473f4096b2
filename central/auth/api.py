"""The JSON API of staff identity and users: who is calling (``/me``) and user administration.

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from central.api import bp
from central.api.helpers import context, json_body, unauthorized
from central.auth import current_actor, current_identity, login_required, roles_required, sessions, users
from central.auth.roles import ADMINISTRATOR


@bp.get("/me")
@login_required
def me() -> Any:
    """Return who is calling and their role."""
    identity = current_identity()
    if identity is None:  # login_required let no anonymous caller in
        return unauthorized("Chưa đăng nhập")
    return jsonify({"username": identity.username, "role": identity.role, "full_name": identity.full_name})


@bp.get("/users")
@roles_required(ADMINISTRATOR)
def list_users() -> Any:
    """List staff users."""
    from central.auth.models import User

    return jsonify([users.user_to_dict(u) for u in User.select().order_by(User.username)])


@bp.post("/users")
@roles_required(ADMINISTRATOR)
def create_user() -> Any:
    """Create a staff user."""
    user = users.create_user(json_body(), actor=current_actor(), now=context().clock())
    return jsonify(users.user_to_dict(user)), 201


@bp.patch("/users/<int:user_id>")
@roles_required(ADMINISTRATOR)
def update_user(user_id: int) -> Any:
    """Change a user's role, name, e-mail, unit, active flag or password (the last active administrator keeps
    the role and stays active; a new password or a deactivation ends the user's other sessions)."""
    user = users.update_user(user_id, json_body(), actor=current_actor(), now=context().clock(),
                             keep_session=sessions.current_token())
    return jsonify(users.user_to_dict(user))
