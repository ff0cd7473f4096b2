"""Central's schema: every feature's tables, created in dependency order.

``core`` knows no feature, so the list of model modules lives here, beside the app factory and the CLI
that need the whole schema.
"""

from __future__ import annotations

from importlib import import_module

from central.core.db import database
from central.core.models import BaseModel

MODEL_MODULES = (
    "central.core.models",
    "central.invitations.models",
    "central.meetings.models",
    "central.registration.models",
    "central.gates.models",
    "central.auth.models",
    "central.desk.models",
    "central.outbound.models",
)
"""Every module that defines central tables."""


def all_models() -> list[type[BaseModel]]:
    """Return every central model (``create_tables`` orders them so that a table follows those it references)."""
    for name in MODEL_MODULES:
        import_module(name)
    found: list[type[BaseModel]] = []
    pending = list(BaseModel.__subclasses__())
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return found


def create_tables() -> None:
    """Create every central table that does not exist yet (idempotent)."""
    with database.connection_context():
        database.create_tables(all_models(), safe=True)
