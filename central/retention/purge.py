"""``vaora-central purge``: anonymise or delete every kind of personal data past its retention.

One transaction does the whole purge; a dry run does the same work and rolls it back, so the counts it prints
are exactly what a real run would change. A real run records its counts in the audit log
(``retention.purge``), which is where the office finds how much was purged and when.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from central.core.audit import audit
from central.core.db import tuples, write_transaction
from central.core.models import AuditEntry
from central.core.states import JobState
from central.desk.models import Walkin
from central.gates.models import CheckIn
from central.meetings.models import Meeting
from central.outbound.models import MailJob
from central.registration.models import Delegate
from central.retention.anonymise import (
    ANONYMOUS_NAME,
    anonymise_delegates,
    anonymise_walkins,
    blank_audit_details,
    delete_mail_jobs,
    thin_checkins,
)
from central.retention.policy import DataKind, RetentionPolicy, cutoff

log = logging.getLogger(__name__)

FINISHED_JOBS = (JobState.SENT, JobState.FAILED, JobState.CANCELLED)


@dataclass
class PurgeReport:
    """What a purge changed (or, in a dry run, would change): rows per kind, at ``now`` with ``policy``."""

    now: datetime
    policy: RetentionPolicy
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """One ``counter<TAB>count`` line per counter."""
        return [f"{name}\t{count}" for name, count in self.counts.items()]


def _ended_before(moment: datetime) -> list[int]:
    return [row[0] for row in tuples(Meeting.select(Meeting.id).where(Meeting.ends_at < moment))]


def _purge(policy: RetentionPolicy, now: datetime) -> dict[str, int]:
    counts: dict[str, int] = {}
    walkin_meetings = _ended_before(cutoff(policy, DataKind.WALKIN, now))
    walkin_ids = [row[0] for row in tuples(
        Walkin.select(Walkin.id).where(Walkin.meeting.in_(walkin_meetings) & (Walkin.id_hash != "")))
    ] if walkin_meetings else []
    counts["walkins_anonymised"] = anonymise_walkins(walkin_ids)

    delegate_meetings = _ended_before(cutoff(policy, DataKind.DELEGATE_CONTACT, now))
    delegate_ids = [row[0] for row in tuples(
        Delegate.select(Delegate.id).where(Delegate.meeting.in_(delegate_meetings)
                                           & (Delegate.name != ANONYMOUS_NAME)))
    ] if delegate_meetings else []
    counts["delegates_anonymised"] = anonymise_delegates(delegate_ids)

    checkin_cutoff = cutoff(policy, DataKind.CHECKIN, now)
    deleted, anonymised = thin_checkins(_ended_before(checkin_cutoff))
    # Scans tied to no meeting (unknown codes, a meeting deleted since) go by their own time.
    deleted += CheckIn.delete().where(CheckIn.meeting.is_null() & (CheckIn.scanned_at < checkin_cutoff)).execute()
    counts["checkins_deleted"] = deleted
    counts["checkins_anonymised"] = anonymised

    counts["audit_details_blanked"] = blank_audit_details(
        AuditEntry.at < cutoff(policy, DataKind.AUDIT_DETAILS, now))
    counts["outbound_jobs_deleted"] = delete_mail_jobs(
        MailJob.status.in_(FINISHED_JOBS) & (MailJob.created_at < cutoff(policy, DataKind.OUTBOUND, now)))
    return counts


class _DryRunError(Exception):
    """Raised inside the purge's transaction to roll it back."""


def purge(policy: RetentionPolicy, now: datetime, *, dry_run: bool = False, actor: str = "purge") -> PurgeReport:
    """Anonymise or delete what is past ``policy`` at ``now`` in one transaction; with ``dry_run`` count the same
    and change nothing. A real run is audited as ``retention.purge`` with its counts."""
    report = PurgeReport(now=now, policy=policy, dry_run=dry_run)
    try:
        with write_transaction():
            report.counts = _purge(policy, now)
            if dry_run:
                raise _DryRunError
            audit(actor, "retention.purge", "retention",
                  {**report.counts, **{f"{kind.value}_days": policy.days(kind) for kind in DataKind}}, now=now)
    except _DryRunError:
        pass
    log.info("retention purge dry_run=%s %s", dry_run, " ".join(f"{k}={v}" for k, v in report.counts.items()))
    return report
