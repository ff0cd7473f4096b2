"""The outbound queue's table: one row per e-mail or SMS to send, claimed by one worker at a time."""

from __future__ import annotations

import peewee

from central.core.models import BaseModel, UTCDateTimeField
from central.core.states import JobState


class MailJob(BaseModel):
    """One e-mail or SMS in the outbound queue (the table's name is from when it held only e-mail).

    ``status`` (a :class:`~central.core.states.JobState`) moves queued -> sending -> sent, or back to queued
    (with ``next_attempt_at`` pushed out) after a failed try, or to failed once ``max_attempts`` is reached;
    cancelled when its subject went away (e.g. a delegate replaced before the mail left). ``kind`` names the
    registered :class:`~central.outbound.engine.JobKind` that sends it; ``ref_id`` is its subject (a delegate,
    an invitation's delivery row) and ``message`` a ready e-mail. ``group_key`` and ``batch`` let a page show
    progress.
    """

    id: peewee.AutoField[int]
    kind = peewee.CharField(max_length=32)
    ref_id = peewee.IntegerField(null=True)
    message = peewee.BlobField(null=True)
    recipient = peewee.CharField(max_length=254)
    group_key = peewee.CharField(max_length=64, null=True, index=True)
    batch = peewee.CharField(max_length=64, null=True, index=True)
    status = peewee.CharField(max_length=16, default=JobState.QUEUED)
    attempts = peewee.IntegerField(default=0)
    max_attempts = peewee.IntegerField(default=8)
    next_attempt_at = UTCDateTimeField()
    claimed_at = UTCDateTimeField(null=True)
    claimed_by = peewee.CharField(max_length=64, null=True)
    last_error = peewee.TextField(null=True)
    created_at = UTCDateTimeField()
    sent_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("status", "next_attempt_at"), False),)
