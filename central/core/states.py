"""The states central stores, one ``StrEnum`` each, with their Vietnamese label (the msgid) and English translation.

A member is a ``str``, so peewee stores it as is and a value read back compares equal to its member. Values that
travel on the wire (the gate's link state and mode in ``protocols.payloads``) are spelled the same there; central
converts at the edge with ``MeetingState(value)`` and so on. Groups used in several places are named frozensets on
the enum (``InvitationState.REGISTERABLE``). English lives in ``central/translations/en``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from flask import has_app_context
from flask_babel import force_locale, gettext
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString


class State(StrEnum):
    """A stored state whose members carry a translated label (see :data:`LABELS`)."""

    @property
    def label(self) -> LazyString:
        """The label in the current locale (lazy: rendered where it is shown)."""
        return LABELS[(type(self).__name__, self.value)]

    @property
    def vi(self) -> str:
        """The Vietnamese label (the source text, whatever the locale)."""
        return str(self.label._args[0])

    def text(self, lang: str) -> str:
        """The label in ``lang`` ("vi" or "en") whatever the request's locale (Vietnamese outside an app)."""
        if lang == "vi":
            return self.vi
        with force_locale(lang):
            return str(gettext(self.vi))

    def labelled(self, key: str) -> dict[str, str]:
        """``{key: value, key_vi: Vietnamese, key_en: English}`` for a JSON document or a live event (English falls
        back to Vietnamese outside an app, where no translations are loaded)."""
        english = self.text("en") if has_app_context() else self.vi
        return {key: self.value, f"{key}_vi": self.vi, f"{key}_en": english}

    @classmethod
    def label_of(cls, value: object) -> object:
        """The label of the member spelled ``value``, or ``value`` itself when it names none."""
        try:
            return cls(str(value)).label
        except ValueError:
            return value


class MeetingState(State):
    """A meeting: draft -> open (registration open) <-> closed (registration closed) -> held; or cancelled."""

    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"
    HELD = "held"
    CANCELLED = "cancelled"

    FINAL: ClassVar[frozenset[MeetingState]]
    """Nothing changes any more: the meeting was held or cancelled (no edits, no new invitations)."""
    TAKES_WALKINS: ClassVar[frozenset[MeetingState]]
    """The meeting still happens, so the desk takes walk-ins (closed = registration closed only)."""


class InvitationState(State):
    """An invitation: draft -> (returned -> draft) -> approved (numbered) -> sent."""

    DRAFT = "draft"
    RETURNED = "returned"
    APPROVED = "approved"
    SENT = "sent"

    REGISTERABLE: ClassVar[frozenset[InvitationState]]
    """Approved or sent: the organisation may register delegates, walk-ins may be linked to it."""
    EDITABLE: ClassVar[frozenset[InvitationState]]
    """Draft or returned: the organiser may still change it and submit it (again)."""


class DelegateMailState(State):
    """The e-mail carrying a delegate's code. ``desk``: a walk-in's code, handed over at the desk, never e-mailed."""

    PENDING = "pending"
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    DESK = "desk"

    UNSENT: ClassVar[frozenset[DelegateMailState]]
    """Not (yet) sent and not on its way: "Gửi Mail" sends these."""


class ApprovalState(State):
    """A delegate's registration when the meeting asks the office to approve registrations
    (``Meeting.registration_approval``): pending -> approved (code issued and mailed) | refused (with a reason).
    Every other registration is approved as it is made."""

    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


class DeliveryState(State):
    """One channel (e-mail or SMS) of sending an invitation, as the invitation's page shows it."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class JobState(State):
    """A job in the outbound queue: queued -> sending -> sent; back to queued after a failed try, failed after
    the last; cancelled when its subject went away before it left."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"

    PENDING: ClassVar[frozenset[JobState]]
    """Still on its way: waiting for a try or being tried."""


class WalkinState(State):
    """A walk-in at the desk: pending -> approved | rejected; approved -> admitted (given a one-day code)."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ADMITTED = "admitted"


class GateLinkState(State):
    """A gate's link as central last heard it (``protocols.payloads.GateStatus.state``, or never heard)."""

    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class SiteLinkState(State):
    """A site broker's bridge to the core as central last heard it (``vaora/v1/sites/<site>/bridge``): connected
    ("1"), disconnected ("0", the bridge's last will) or never connected (the site broker was provisioned with
    ``broker-config --site`` and central has not heard its bridge yet)."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    NEVER = "never"


class GateMode(State):
    """A gate's operating mode as it last reported it (``protocols.payloads.GateMode``)."""

    NORMAL = "normal"
    LOCKDOWN = "lockdown"
    RELEASE = "release"


class CommandState(State):
    """A gate command: sent until the gate answers (ok / failed) or the issuer stops waiting (timeout)."""

    SENT = "sent"
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"

    ANSWERED: ClassVar[frozenset[CommandState]]
    """The gate answered; a later answer changes nothing."""
    AWAITING: ClassVar[frozenset[CommandState]]
    """No answer yet (a late answer after a timeout still counts)."""


class ConflictReason(State):
    """Why central flags a stored entry (``central.gates.conflicts``): a code revoked or replaced before the scan,
    a second entry in one meeting day under the ``single`` policy, or an entry at a gate of none of the meeting's
    venues' sites."""

    REVOKED_CODE = "revoked_code"
    REPLACED_CODE = "replaced_code"
    SECOND_ENTRY = "second_entry"
    WRONG_SITE = "wrong_site"


class AlarmKind(State):
    """A gate alarm shown until a guard or organiser acknowledges it: a door forced, or the emergency input."""

    DOOR_FORCED = "door_forced"
    EMERGENCY = "emergency"


MeetingState.FINAL = frozenset({MeetingState.HELD, MeetingState.CANCELLED})
MeetingState.TAKES_WALKINS = frozenset({MeetingState.OPEN, MeetingState.CLOSED})
InvitationState.REGISTERABLE = frozenset({InvitationState.APPROVED, InvitationState.SENT})
InvitationState.EDITABLE = frozenset({InvitationState.DRAFT, InvitationState.RETURNED})
DelegateMailState.UNSENT = frozenset({DelegateMailState.PENDING, DelegateMailState.FAILED})
JobState.PENDING = frozenset({JobState.QUEUED, JobState.SENDING})
CommandState.ANSWERED = frozenset({CommandState.OK, CommandState.FAILED})
CommandState.AWAITING = frozenset({CommandState.SENT, CommandState.TIMEOUT})

LABELS: dict[tuple[str, str], LazyString] = {
    ("MeetingState", "draft"): _l("Dự thảo"),
    ("MeetingState", "open"): _l("Đang mở đăng ký"),
    ("MeetingState", "closed"): _l("Đã đóng đăng ký"),
    ("MeetingState", "held"): _l("Đã họp"),
    ("MeetingState", "cancelled"): _l("Đã hủy"),
    ("InvitationState", "draft"): _l("Dự thảo"),
    ("InvitationState", "returned"): _l("Bị trả lại"),
    ("InvitationState", "approved"): _l("Đã duyệt"),
    ("InvitationState", "sent"): _l("Đã gửi"),
    ("DelegateMailState", "pending"): _l("Chưa gửi mail"),
    ("DelegateMailState", "queued"): _l("Đang chờ gửi"),
    ("DelegateMailState", "sent"): _l("Đã gửi mail"),
    ("DelegateMailState", "failed"): _l("Gửi lỗi"),
    ("DelegateMailState", "desk"): _l("Nhận mã tại bàn tiếp đón"),
    ("ApprovalState", "pending"): _l("Chờ văn phòng duyệt"),
    ("ApprovalState", "approved"): _l("Đã duyệt"),
    ("ApprovalState", "refused"): _l("Bị từ chối"),
    ("DeliveryState", "queued"): _l("Đang chờ gửi"),
    ("DeliveryState", "sent"): _l("Đã gửi"),
    ("DeliveryState", "failed"): _l("Gửi lỗi"),
    ("JobState", "queued"): _l("Đang chờ gửi"),
    ("JobState", "sending"): _l("Đang gửi"),
    ("JobState", "sent"): _l("Đã gửi"),
    ("JobState", "failed"): _l("Gửi lỗi"),
    ("JobState", "cancelled"): _l("Đã hủy gửi"),
    ("WalkinState", "pending"): _l("Chờ duyệt"),
    ("WalkinState", "approved"): _l("Đã duyệt"),
    ("WalkinState", "rejected"): _l("Bị từ chối"),
    ("WalkinState", "admitted"): _l("Đã cấp mã vào"),
    ("GateLinkState", "online"): _l("Trực tuyến"),
    ("GateLinkState", "offline"): _l("Mất kết nối"),
    ("GateLinkState", "unknown"): _l("Chưa rõ"),
    ("SiteLinkState", "connected"): _l("Trạm đã kết nối"),
    ("SiteLinkState", "disconnected"): _l("Mất kết nối trạm (site offline)"),
    ("SiteLinkState", "never"): _l("Trạm chưa từng kết nối (site offline)"),
    ("GateMode", "normal"): _l("Bình thường"),
    ("GateMode", "lockdown"): _l("Khóa cổng"),
    ("GateMode", "release"): _l("Mở thoát hiểm"),
    ("CommandState", "sent"): _l("Đã gửi, chờ cổng trả lời"),
    ("CommandState", "ok"): _l("Cổng đã thực hiện"),
    ("CommandState", "failed"): _l("Cổng từ chối"),
    ("CommandState", "timeout"): _l("Cổng không trả lời"),
    ("ConflictReason", "revoked_code"): _l("Vào bằng mã đã bị thu hồi"),
    ("ConflictReason", "replaced_code"): _l("Vào bằng mã của người đã được thay"),
    ("ConflictReason", "second_entry"): _l("Vào lần thứ hai trong cùng ngày họp"),
    ("ConflictReason", "wrong_site"): _l("Vào ở cổng không thuộc địa điểm của cuộc họp"),
    ("AlarmKind", "door_forced"): _l("Cổng bị vượt trái phép"),
    ("AlarmKind", "emergency"): _l("Mở khẩn cấp"),
}
"""(enum name, value) -> lazy label. Keyed by the enum too: "sent" is a state of several enums."""

ALL_STATES: tuple[type[State], ...] = (
    MeetingState, InvitationState, DelegateMailState, ApprovalState, DeliveryState, JobState, WalkinState,
    GateLinkState, SiteLinkState, GateMode, CommandState, ConflictReason, AlarmKind,
)
"""Every state enum, for tests and templates."""
