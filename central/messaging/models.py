"""The messaging side's own table: the change feed's durable cursor."""

from __future__ import annotations

import peewee

from central.core.models import BaseModel


class FeedCursor(BaseModel):
    """How far a feed has published the change log."""

    name = peewee.CharField(max_length=32, unique=True)
    seq = peewee.IntegerField(default=0)
