"""How pages and messages name a gate: by its display name ("Cổng chính"), as "Cổng <id>" only when it has none.

The one rule, used by the dashboard's arrivals and conflicts, the fleet's commands, the alarms and the desk's
messages. The JSON carries ``gate_name`` (the name, or None) next to ``gate_id`` (kept for links and scripts);
templates and scripts fall back to "Cổng <id>" / "Gate <id>" themselves.
"""

from __future__ import annotations

from flask_babel import gettext as _

from central.gates.models import Gate


def gate_label(gate: Gate | None) -> str | None:
    """The display name of ``gate``, or None when it has none (or there is no gate)."""
    if gate is None:
        return None
    return str(gate.name) if gate.name else None


def gate_title_of(gate_id: str | None) -> str:
    """How a message in a request names the gate ``gate_id``: its name, else "Cổng <id>" ("" for none)."""
    if not gate_id:
        return ""
    return gate_label(Gate.get_or_none(Gate.gate_id == gate_id)) or _("Cổng %(id)s", id=gate_id)
