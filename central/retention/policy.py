"""How long each kind of personal data is kept, and the one function that says what is past it at ``now``.

Every retention counts from a moment stored with the data: the end of the meeting for delegates' contact data,
walk-ins and check-ins, the entry's time for audit details, the job's creation for outbound e-mail and SMS.
Defaults and their reasons are in the README ("Personal data and retention").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from central.config import CentralConfig


class DataKind(StrEnum):
    """A kind of personal data with its own retention."""

    DELEGATE_CONTACT = "delegate_contact"
    """Delegates' names, positions, e-mail addresses, phone numbers and codes (anonymised)."""
    WALKIN = "walkin"
    """Walk-ins' names, dates of birth, sex and ID number hashes, and their one-day codes (anonymised)."""
    CHECKIN = "checkin"
    """Check-ins: refusals, exits and repeated entries deleted, counted entries kept without credential or notes."""
    AUDIT_DETAILS = "audit_details"
    """The details of audit entries (names, masked numbers); who did what, to which id and when stay."""
    OUTBOUND = "outbound"
    """Finished e-mail and SMS jobs: addresses, codes and links with secrets (deleted)."""


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each :class:`DataKind` is kept after its reference moment."""

    delegate_contact_days: int = 365
    walkin_days: int = 90
    checkin_days: int = 730
    audit_details_days: int = 730
    outbound_days: int = 30

    @classmethod
    def from_config(cls, config: CentralConfig) -> RetentionPolicy:
        """The policy of the ``VAORA_RETENTION_*`` settings."""
        return cls(
            delegate_contact_days=config.retention_delegate_days,
            walkin_days=config.retention_walkin_days,
            checkin_days=config.retention_checkin_days,
            audit_details_days=config.retention_audit_days,
            outbound_days=config.retention_outbound_days,
        )

    def days(self, kind: DataKind) -> int:
        """How many days ``kind`` is kept."""
        return {
            DataKind.DELEGATE_CONTACT: self.delegate_contact_days,
            DataKind.WALKIN: self.walkin_days,
            DataKind.CHECKIN: self.checkin_days,
            DataKind.AUDIT_DETAILS: self.audit_details_days,
            DataKind.OUTBOUND: self.outbound_days,
        }[kind]


def cutoff(policy: RetentionPolicy, kind: DataKind, now: datetime) -> datetime:
    """The moment before which data of ``kind`` is past retention at ``now``: data whose reference moment (the
    meeting's end, the audit entry's time, the job's creation) is earlier than it goes."""
    return now - timedelta(days=policy.days(kind))
