"""The MQTT topic tree under one versioned root. See protocols/README.md for direction, QoS and retain."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

ROOT = "vaora/v1"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def is_valid_id(value: str) -> bool:
    """True for a valid gate or site id: lower-case letters, digits, ``-`` and ``_``, 1 to 32 long."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _checked(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError(f"invalid id for a topic: {value!r}")
    return value


def gate_checkins(gate_id: str) -> str:
    """Check-ins from one gate to central (QoS 1, not retained)."""
    return f"{ROOT}/gates/{_checked(gate_id)}/checkins"


def gate_acks(gate_id: str) -> str:
    """Central's application-level acknowledgements to one gate (QoS 0; the gate re-publishes until one arrives)."""
    return f"{ROOT}/gates/{_checked(gate_id)}/acks"


def gate_status(gate_id: str) -> str:
    """A gate's online/offline state (QoS 1, retained, last will "offline")."""
    return f"{ROOT}/gates/{_checked(gate_id)}/status"


def gate_heartbeat(gate_id: str) -> str:
    """A gate's periodic heartbeat with its cache sequence (QoS 0)."""
    return f"{ROOT}/gates/{_checked(gate_id)}/heartbeat"


def gate_commands(gate_id: str) -> str:
    """Commands from central to one gate: open, lock down, release, resync (QoS 1)."""
    return f"{ROOT}/gates/{_checked(gate_id)}/commands"


def gate_command_results(gate_id: str) -> str:
    """A gate's answers to commands (QoS 1)."""
    return f"{ROOT}/gates/{_checked(gate_id)}/command-results"


def site_checkins(site_id: str) -> str:
    """Check-in fan-out among the gates of one site, for anti-passback while central is away (QoS 1)."""
    return f"{ROOT}/sites/{_checked(site_id)}/checkins"


def site_changes(site_id: str) -> str:
    """Central's change stream for one site: the changes of the meetings with a venue at that site, revocations
    of their delegates and the signing keys (QoS 1). Each message carries ``prev`` (see protocols/README.md)."""
    return f"{ROOT}/sites/{_checked(site_id)}/changes"


def site_bridge_state(site_id: str) -> str:
    """A site broker's bridge to the core: "1" connected, "0" gone (retained; the bridge's notification and
    last will, published by Mosquitto itself)."""
    return f"{ROOT}/sites/{_checked(site_id)}/bridge"


ALL_SITE_BRIDGE_STATES = f"{ROOT}/sites/+/bridge"
"""Every site broker's bridge state (central subscribes without a share group: it is retained)."""
_SITE_BRIDGE_TOPIC = re.compile(rf"^{re.escape(ROOT)}/sites/([^/]+)/bridge$")


def is_site_bridge_topic(topic: str) -> bool:
    """True for ``vaora/v1/sites/<anything without a slash>/bridge`` (whether or not the site id is valid)."""
    return isinstance(topic, str) and _SITE_BRIDGE_TOPIC.fullmatch(topic) is not None


def site_id_from_bridge_topic(topic: str) -> str | None:
    """The site id in a bridge-state topic, or None when the topic is not one or the id is invalid."""
    match = _SITE_BRIDGE_TOPIC.fullmatch(topic) if isinstance(topic, str) else None
    if match is None or not is_valid_id(match.group(1)):
        return None
    return match.group(1)


def shared(group: str, topic_filter: str) -> str:
    """``topic_filter`` as a shared subscription of ``group`` (``$share/<group>/<filter>``): the broker deals each
    message to one member of the group instead of to every subscriber."""
    if not group or any(ch in group for ch in "/+#$") or any(ch.isspace() for ch in group):
        raise ValueError(f"invalid share group: {group!r}")
    return f"$share/{group}/{topic_filter}"


CHANGES = f"{ROOT}/central/changes"
"""The legacy global change stream (every site's changes, no ``prev``): published only while
``VAORA_LEGACY_CHANGE_STREAM=1``, for gates older than the per-site streams (:func:`site_changes`)."""
ALL_SITE_CHANGES = f"{ROOT}/sites/+/changes"
ALL_GATE_CHECKINS = f"{ROOT}/gates/+/checkins"
ALL_GATE_STATUS = f"{ROOT}/gates/+/status"
ALL_GATE_HEARTBEATS = f"{ROOT}/gates/+/heartbeat"
ALL_GATE_COMMAND_RESULTS = f"{ROOT}/gates/+/command-results"
ALL_GATE_ACKS = f"{ROOT}/gates/+/acks"
ALL_GATE_COMMANDS = f"{ROOT}/gates/+/commands"

_GATE_TOPIC = re.compile(rf"^{re.escape(ROOT)}/gates/([^/]+)/([^/]+)$")


class GateChannel(StrEnum):
    """The per-gate topics, by their last segment."""

    CHECKINS = "checkins"
    ACKS = "acks"
    STATUS = "status"
    HEARTBEAT = "heartbeat"
    COMMANDS = "commands"
    COMMAND_RESULTS = "command-results"


@dataclass(frozen=True)
class GateTopic:
    """A parsed per-gate topic: which gate, and which of its channels."""

    gate_id: str
    channel: GateChannel


def parse_gate_topic(topic: str) -> GateTopic | None:
    """Parse ``vaora/v1/gates/<gate>/<channel>``; None when it is not a per-gate topic of this tree, the gate id
    is invalid or the channel unknown."""
    return _parse_gate_topic(topic) if isinstance(topic, str) else None


@lru_cache(maxsize=8192)
def _parse_gate_topic(topic: str) -> GateTopic | None:
    """:func:`parse_gate_topic` of a text, remembered: the ingest parses each gate's few topics on every message."""
    match = _GATE_TOPIC.fullmatch(topic)
    if match is None or not is_valid_id(match.group(1)):
        return None
    try:
        channel = GateChannel(match.group(2))
    except ValueError:
        return None
    return GateTopic(match.group(1), channel)


def gate_id_from_topic(topic: str) -> str | None:
    """Return the gate id in a per-gate topic, or None when the topic is not one or the id is invalid."""
    parsed = parse_gate_topic(topic)
    return parsed.gate_id if parsed is not None else None
