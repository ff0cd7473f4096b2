"""The outbox table: one row per e-mail to deliver, claimed by one worker at a time."""

from __future__ import annotations

import peewee

from central.core.models import BaseModel, UTCDateTimeField

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (QUEUED, SENDING, SENT, FAILED, CANCELLED)

KIND_MESSAGE = "message"
"""A ready e-mail stored as bytes (anything sent through the queueing sender)."""
KIND_DELEGATE_CODE = "delegate_code"
"""A delegate's code e-mail with ticket and calendar entry, built when it is sent (``ref_id`` = delegate)."""


class MailJob(BaseModel):
    """One e-mail in the outbox.

    ``status`` moves queued -> sending -> sent, or back to queued (with ``next_attempt_at`` pushed out) after
    a failed attempt, or to failed once ``max_attempts`` is reached; cancelled when its subject went away
    (e.g. a delegate replaced before the mail left). ``group_key`` and ``batch`` let a page show progress.
    """

    kind = peewee.CharField(max_length=32)
    ref_id = peewee.IntegerField(null=True)
    message = peewee.BlobField(null=True)
    recipient = peewee.CharField(max_length=254)
    group_key = peewee.CharField(max_length=64, null=True, index=True)
    batch = peewee.CharField(max_length=64, null=True, index=True)
    status = peewee.CharField(max_length=16, default=QUEUED)
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
