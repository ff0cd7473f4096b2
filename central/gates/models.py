"""The tables of gates: registered gates, their check-ins, the conflicts central flags on them, the gates' alarms
and the commands sent to them.
"""

from __future__ import annotations

from typing import Any

import peewee

from central.core.models import BaseModel, UTCDateTimeField
from central.core.states import (
    CommandState,
    GateLinkState,
    SiteLinkState,
)
from central.meetings.models import Meeting
from central.registration.models import Delegate


class Gate(BaseModel):
    """A registered gate unit; its token (shown once) is stored only as a hash."""

    checkins: peewee.ModelSelect[Any]  # backref
    commands: peewee.ModelSelect[Any]  # backref
    gate_id = peewee.CharField(max_length=32, unique=True)
    name = peewee.CharField(max_length=200, default="")
    site_id = peewee.CharField(max_length=32, index=True)
    direction = peewee.CharField(max_length=8, default="in")
    token_hash = peewee.CharField(max_length=64)
    last_seen_at = UTCDateTimeField(null=True)
    cache_seq = peewee.IntegerField(null=True)
    software_version = peewee.CharField(max_length=200, null=True)
    state = peewee.CharField(max_length=16, default=GateLinkState.UNKNOWN)
    emergency = peewee.BooleanField(default=False)
    outbox_pending = peewee.IntegerField(null=True)
    mode = peewee.CharField(max_length=16, null=True)  # normal | lockdown | release, as the gate last reported
    fail_mode = peewee.CharField(max_length=8, null=True)  # safe | secure, as the gate last reported
    # central - gate clock in seconds, measured from the last heartbeat (receive time - the gate's sent_at),
    # the offset the gate itself estimated, and whether the gate's clock is absurd (central.gates.clock).
    clock_offset_s = peewee.FloatField(null=True)
    clock_reported_offset_s = peewee.FloatField(null=True)
    clock_suspect = peewee.BooleanField(default=False)
    measures_clock = peewee.BooleanField(default=False)  # its heartbeats carry clock_offset_s: it reads clock fields


class SiteLink(BaseModel):
    """A site broker's bridge to the core, as central last heard it on ``vaora/v1/sites/<site>/bridge``
    (:mod:`central.gates.site_links`). A row exists for a site whose broker was provisioned (``broker-config
    --site``, state ``never``) or whose bridge central has heard; a site without one has its gates on the core.

    ``changed_at``: when central learned the current state (the bridge's notification carries no time);
    ``connected_at``: when central last learned it connected (null: never)."""

    site_id = peewee.CharField(max_length=32, unique=True)
    state = peewee.CharField(max_length=16, default=SiteLinkState.NEVER)
    changed_at = UTCDateTimeField()
    connected_at = UTCDateTimeField(null=True)


class CheckIn(BaseModel):
    """A check-in received from a gate; stored once per ``checkin_id``."""

    checkin_id = peewee.UUIDField(unique=True)
    # Null for a person marked present by hand on the dashboard (no gate involved; see ``note``).
    gate = peewee.ForeignKeyField(Gate, backref="checkins", null=True)
    gate_id: peewee.IntegerField[int | None]  # the key column peewee adds
    meeting = peewee.ForeignKeyField(Meeting, backref="checkins", null=True, on_delete="SET NULL")
    meeting_id: peewee.IntegerField[int | None]  # the key column peewee adds
    delegate = peewee.ForeignKeyField(Delegate, backref="checkins", null=True, on_delete="SET NULL")
    delegate_id: peewee.IntegerField[int | None]  # the key column peewee adds
    allowed = peewee.BooleanField()
    reason = peewee.CharField(max_length=32)
    outcome = peewee.CharField(max_length=16)
    direction = peewee.CharField(max_length=8)
    scheme = peewee.CharField(max_length=16, null=True)
    scanned_at = UTCDateTimeField(index=True)  # on central's clock: the gate's time corrected (central.gates.clock)
    completed_at = UTCDateTimeField(null=True)  # corrected the same way
    received_at = UTCDateTimeField()
    gate_scanned_at = UTCDateTimeField(null=True)  # the gate's own clock, as it sent it
    clock_offset_s = peewee.FloatField(null=True)  # the correction applied (central - gate, seconds)
    clock_suspect = peewee.BooleanField(default=False)  # the gate's time was absurd; see scanned_at's origin
    manual = peewee.BooleanField(default=False)
    credential = peewee.CharField(max_length=128, null=True, index=True)
    note = peewee.TextField(null=True)  # the reason an organiser gave when marking someone present by hand
    operator = peewee.CharField(max_length=200, null=True)  # who opened the gate remotely (a manual check-in)
    command_id = peewee.UUIDField(null=True, index=True)  # the gate command that caused this check-in


class CheckInConflict(BaseModel):
    """An entry central flags (``central.gates.conflicts``), once per (check-in, reason).

    ``reason`` is a :class:`central.core.states.ConflictReason`. ``other_checkin``: the day's first entry that a
    second entry repeats; ``other_delegate``: the delegate who replaced the one whose code was used.
    """

    checkin = peewee.ForeignKeyField(CheckIn, backref="conflicts", on_delete="CASCADE")
    checkin_id: peewee.IntegerField[int]  # the key column peewee adds
    reason = peewee.CharField(max_length=32)
    meeting = peewee.ForeignKeyField(Meeting, backref="conflicts", null=True, on_delete="CASCADE")
    meeting_id: peewee.IntegerField[int | None]  # the key column peewee adds
    delegate = peewee.ForeignKeyField(Delegate, backref="conflicts", null=True, on_delete="SET NULL")
    delegate_id: peewee.IntegerField[int | None]  # the key column peewee adds
    other_checkin = peewee.ForeignKeyField(CheckIn, backref="named_in_conflicts", null=True, on_delete="SET NULL")
    other_checkin_id: peewee.IntegerField[int | None]  # the key column peewee adds
    other_delegate = peewee.ForeignKeyField(Delegate, backref="replacing_in_conflicts", null=True,
                                            on_delete="SET NULL")
    other_delegate_id: peewee.IntegerField[int | None]  # the key column peewee adds
    detected_at = UTCDateTimeField(index=True)

    class Meta:
        indexes = ((("checkin", "reason"), True),)


class GateAlarm(BaseModel):
    """An alarm a gate raised (``central.gates.alarms``): a forced door (one per check-in) or the emergency input
    (one per activation, ``cleared_at`` once released). Active until acknowledged; kept afterwards as history."""

    gate = peewee.ForeignKeyField(Gate, backref="alarms", on_delete="CASCADE")
    gate_id: peewee.IntegerField[int]  # the key column peewee adds
    kind = peewee.CharField(max_length=16)
    checkin = peewee.ForeignKeyField(CheckIn, backref="alarms", null=True, unique=True, on_delete="SET NULL")
    checkin_id: peewee.IntegerField[int | None]  # the key column peewee adds
    raised_at = UTCDateTimeField(index=True)
    cleared_at = UTCDateTimeField(null=True)
    acknowledged_at = UTCDateTimeField(null=True, index=True)
    acknowledged_by = peewee.CharField(max_length=64, null=True)
    note = peewee.CharField(max_length=200, default="")


class GateCommand(BaseModel):
    """A command central sent to one gate (open, lockdown, release, resume, resync) and the gate's answer.

    ``status``: ``sent`` until the gate answers (``ok`` / ``failed`` with ``reason``) or the issuer stops waiting
    (``timeout``; a late answer still sets ``ok`` / ``failed``).
    """

    command_id = peewee.UUIDField(unique=True)
    gate = peewee.ForeignKeyField(Gate, backref="commands", on_delete="CASCADE")
    gate_id: peewee.IntegerField[int]  # the key column peewee adds
    action = peewee.CharField(max_length=16)
    note = peewee.CharField(max_length=200, default="")
    meeting_id = peewee.IntegerField(null=True)
    delegate_id = peewee.IntegerField(null=True)
    issued_by = peewee.CharField(max_length=64)
    issued_at = UTCDateTimeField(index=True)
    status = peewee.CharField(max_length=16, default=CommandState.SENT, index=True)
    reason = peewee.CharField(max_length=200, null=True)
    answered_at = UTCDateTimeField(null=True)
