"""The JSON API of staff identity and users: who is calling (``/me``) and user administration.

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from central.api import bp
from central.api.helpers import context, unauthorized
from central.api.spec import Responses, errors, validate, validated_json
from central.auth import current_actor, current_identity, login_required, roles_required, sessions, users
from central.auth import schemas as a
from central.auth.roles import ADMINISTRATOR


@bp.get("/me")
@login_required
@validate(resp=Responses(HTTP_200=a.Me, **errors(401)))
def me() -> Any:
    """Return who is calling and their role."""
    identity = current_identity()
    if identity is None:  # login_required let no anonymous caller in
        return unauthorized("Chưa đăng nhập")
    return jsonify({"username": identity.username, "role": identity.role, "full_name": identity.full_name})


@bp.get("/users")
@roles_required(ADMINISTRATOR)
@validate(resp=Responses(HTTP_200=a.UserList, **errors(401, 403)))
def list_users() -> Any:
    """List staff users."""
    from central.auth.models import User

    return jsonify([users.user_to_dict(u) for u in User.select().order_by(User.username)])


@bp.post("/users")
@roles_required(ADMINISTRATOR)
@validate(json=a.UserCreate, resp=Responses(HTTP_201=a.User, **errors(400, 401, 403, 409)))
def create_user() -> Any:
    """Create a staff user."""
    user = users.create_user(validated_json(), actor=current_actor(), now=context().clock())
    return jsonify(users.user_to_dict(user)), 201


@bp.patch("/users/<int:user_id>")
@roles_required(ADMINISTRATOR)
@validate(json=a.UserUpdate, resp=Responses(HTTP_200=a.User, **errors(400, 401, 403, 404, 409)))
def update_user(user_id: int) -> Any:
    """Change a user's role, name, e-mail, unit, active flag or password (the last active administrator keeps
    the role and stays active; a new password or a deactivation ends the user's other sessions)."""
    user = users.update_user(user_id, validated_json(), actor=current_actor(), now=context().clock(),
                             keep_session=sessions.current_token())
    return jsonify(users.user_to_dict(user))
