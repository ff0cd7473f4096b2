"""The last handled scans, kept in memory for the guard's status page (never written to disk or the log)."""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Iterator
from datetime import datetime

from protocols.reasons import Reason

RECENT_SCANS = 50


@dataclasses.dataclass(frozen=True)
class ScanRecord:
    """One handled scan (or manual open / forced passage)."""

    at: datetime
    checkin_id: str
    allowed: bool
    reason: Reason
    meeting_id: int | None
    delegate_id: int | None
    name: str | None
    organisation: str | None
    position: str | None = None
    manual: bool = False
    outcome: str | None = None


class RecentScans:
    """The newest :data:`RECENT_SCANS` records, newest first; safe to use from several threads."""

    def __init__(self, size: int = RECENT_SCANS) -> None:
        self._records: deque[ScanRecord] = deque(maxlen=size)
        self._lock = threading.Lock()

    def remember(self, record: ScanRecord) -> None:
        """Add ``record`` as the newest."""
        with self._lock:
            self._records.appendleft(record)

    def set_outcome(self, checkin_id: str, outcome: str) -> None:
        """Note the passage outcome of a record once the turnstile cycle reported it."""
        with self._lock:
            for index, record in enumerate(self._records):
                if record.checkin_id == checkin_id:
                    self._records[index] = dataclasses.replace(record, outcome=outcome)
                    break

    def snapshot(self) -> list[ScanRecord]:
        """The records now, newest first."""
        with self._lock:
            return list(self._records)

    def __getitem__(self, index: int) -> ScanRecord:
        return self.snapshot()[index]

    def __iter__(self) -> Iterator[ScanRecord]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
