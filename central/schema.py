"""Central's models: every feature's tables, as the code sees them.

``core`` knows no feature, so the list of model modules lives here. The database itself is built and upgraded
by the migrations (``central.migrations``), never from the models; ``tests/central/test_migrations.py`` checks
that the two agree, so a model changed without its migration fails the suite.
"""

from __future__ import annotations

from importlib import import_module

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
    "central.messaging.models",
    "central.clients.models",
)
"""Every module that defines central tables."""


def all_models() -> list[type[BaseModel]]:
    """Return every central model (subclasses of the base model, found by walking the class tree)."""
    for name in MODEL_MODULES:
        import_module(name)
    found: list[type[BaseModel]] = []
    pending = list(BaseModel.__subclasses__())
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return found

