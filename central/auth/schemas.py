"""The users API's request and response models (validated by spectree, they make the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, RootModel
from pydantic.json_schema import SkipJsonSchema

from central.api.schemas import Bool, Email, Id, text
from central.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from central.auth.roles import ROLES

Role = Literal["administrator", "organiser", "approver", "registrar", "guard"]
assert set(Role.__args__) == set(ROLES)  # type: ignore[attr-defined]

Username = Field(min_length=3, max_length=64, pattern=r"^\s*[a-z0-9][a-z0-9._-]{2,63}\s*$",
                 description="3-64 lower-case letters, digits, '.', '_' or '-'; unique (a second one answers 409)")
PASSWORD_RULE = (f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters, not one of the most common passwords, "
                 "not containing the username (400, field password); a new one ends the user's other sessions")
Password = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH, description=PASSWORD_RULE)
FullName = text(120, required=False)
Position = text(120, required=False)


class UserCreate(BaseModel):
    """A new staff user; a unit registrar (``registrar``) belongs to an organisation."""

    username: str = Username
    password: str = Password
    role: Role
    full_name: FullName | None = None  # type: ignore[valid-type]
    position: Position | None = None  # type: ignore[valid-type]
    email: Email = None
    organisation_id: Id | None = None


class UserUpdate(BaseModel):
    """The fields of a user to change (only those sent)."""

    role: Role | SkipJsonSchema[None] = None
    full_name: FullName | None = None  # type: ignore[valid-type]
    position: Position | None = None  # type: ignore[valid-type]
    email: Email = None
    organisation_id: Id | None = None
    active: Bool | SkipJsonSchema[None] = None
    password: str | SkipJsonSchema[None] = Field(default=None, min_length=MIN_PASSWORD_LENGTH,
                                                 max_length=MAX_PASSWORD_LENGTH, description=PASSWORD_RULE)


class User(BaseModel):
    """A staff user (never the password)."""

    id: int
    username: str
    full_name: str
    position: str = ""
    email: str | None
    role: Role
    organisation_id: int | None
    active: bool
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    last_login_at: str | None = Field(json_schema_extra={"format": "date-time"})


class UserList(RootModel[list[User]]):
    """Staff users."""


class Me(BaseModel):
    """Who is calling."""

    username: str
    role: Role
    full_name: str


