"""The audit log as sentences: "Nguyễn Thị A đăng ký đại biểu Trần Văn B cho thư mời 3/GM-UBND".

Each action has one sentence (translated with the page's language) filled from the entry's details and from the
names of its actor and target (users by full name, meetings by title, invitations by number, organisations, venues
and delegates by name), looked up once per page. An action without a sentence, or whose details lack a field its
sentence needs, reads "<actor>: <action label>" with the raw action code; nothing is lost, the details stay
available beside the sentence.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from central.auth.models import User
from central.core.models import AuditEntry
from central.gates.models import Gate
from central.invitations.models import Invitation, IssuingBody, Organisation
from central.meetings.models import Meeting, Venue
from central.registration.models import Delegate

SENTENCES: dict[str, Any] = {
    "api_client.create": _l("%(actor)s tạo ứng dụng kết nối %(name)s"),
    "api_client.revoke": _l("%(actor)s thu hồi ứng dụng kết nối %(name)s"),
    "attendance.mark_present": _l("%(actor)s ghi nhận có mặt thủ công cho %(name)s (lý do: %(reason)s)"),
    "auth.lockout": _l("Tạm khóa đăng nhập của %(target)s"),
    "auth.login": _l("%(actor)s đăng nhập"),
    "auth.login_failed": _l("%(actor)s đăng nhập không thành công"),
    "auth.logout": _l("%(actor)s đăng xuất"),
    "delegate.edit": _l("%(actor)s sửa thông tin đại biểu %(target)s của thư mời %(invitation)s"),
    "delegate.import": _l("%(actor)s nhập danh sách đại biểu từ tệp cho thư mời %(invitation)s"),
    "delegate.register": _l("%(actor)s đăng ký đại biểu %(name)s cho thư mời %(invitation)s"),
    "delegate.remove": _l("%(actor)s xóa đại biểu %(name)s khỏi thư mời %(invitation)s"),
    "delegate.replace": _l("%(actor)s thay đại biểu %(target)s của thư mời %(invitation)s"),
    "delegate.send_mail": _l("%(actor)s gửi mã cho %(count)s đại biểu của %(target)s"),
    "delivery.failed": _l("%(actor)s gửi %(target)s qua %(channel)s không thành công (lần %(attempts)s)"),
    "delivery.resend": _l("%(actor)s gửi lại %(target)s qua %(channel)s"),
    "delivery.sent": _l("%(actor)s đã gửi %(target)s qua %(channel)s"),
    "document.delete": _l("%(actor)s xóa tài liệu %(filename)s của %(target)s"),
    "document.upload": _l("%(actor)s tải lên tài liệu %(filename)s cho %(target)s"),
    "gate.register": _l("%(actor)s đăng ký %(target)s"),
    "invitation.approve": _l("%(actor)s duyệt thư mời %(number)s"),
    "invitation.draft": _l("%(actor)s soạn %(target)s"),
    "invitation.resubmit": _l("%(actor)s trình lại %(target)s"),
    "invitation.return": _l("%(actor)s trả lại %(target)s với ý kiến: %(comment)s"),
    "issuing_body.create": _l("%(actor)s thêm cơ quan ban hành %(name)s"),
    "issuing_body.update": _l("%(actor)s sửa cơ quan ban hành %(name)s"),
    "meeting.create": _l("%(actor)s tạo %(target)s"),
    "meeting.status": _l("%(actor)s chuyển trạng thái %(target)s"),
    "meeting.update": _l("%(actor)s sửa %(target)s"),
    "meeting.walkin_policy": _l("%(actor)s đổi cách tiếp khách tại bàn của %(target)s"),
    "organisation.create": _l("%(actor)s thêm đơn vị %(name)s"),
    "organisation.import": _l("%(actor)s nhập danh sách đơn vị từ tệp"),
    "organisation.update": _l("%(actor)s sửa %(target)s"),
    "protocol.update": _l("%(actor)s sửa thứ tự lễ tân"),
    "retention.erase": _l("%(actor)s xóa dữ liệu cá nhân theo yêu cầu"),
    "retention.export": _l("%(actor)s xuất dữ liệu cá nhân theo yêu cầu"),
    "retention.purge": _l("%(actor)s xóa dữ liệu quá hạn lưu trữ"),
    "signing_key.revoke": _l("%(actor)s thu hồi khóa ký mã"),
    "signing_key.rotate": _l("%(actor)s tạo khóa ký mã mới"),
    "user.create": _l("%(actor)s tạo tài khoản %(username)s"),
    "user.update": _l("%(actor)s sửa %(target)s"),
    "venue.create": _l("%(actor)s thêm địa điểm %(name)s"),
    "venue.update": _l("%(actor)s sửa %(target)s"),
    "walkin.admit": _l("%(actor)s cho khách %(name)s vào theo thư mời %(invitation)s"),
    "walkin.approve": _l("%(actor)s duyệt khách %(name)s"),
    "walkin.open_gate": _l("%(actor)s mở cổng %(gate)s cho khách tại bàn tiếp đón"),
    "walkin.register": _l("%(actor)s ghi nhận khách %(name)s theo thư mời %(invitation)s"),
    "walkin.reject": _l("%(actor)s từ chối khách %(name)s"),
}
"""One sentence per action; ``%(actor)s`` and ``%(target)s`` are names, the rest the entry's details."""

CHANNELS = {"email": _l("email"), "sms": _l("tin nhắn SMS")}

_KINDS = {"meeting": Meeting, "invitation": Invitation, "organisation": Organisation, "venue": Venue,
          "delegate": Delegate, "user": User, "issuing_body": IssuingBody}


@dataclass(frozen=True)
class AuditLine:
    """An entry as the page shows it."""

    entry: AuditEntry
    sentence: str
    details: dict[str, Any]


def _ids(entries: Iterable[AuditEntry]) -> dict[str, set[int]]:
    wanted: dict[str, set[int]] = {kind: set() for kind in _KINDS}
    for entry in entries:
        kind, _sep, key = entry.target.partition(":")
        if kind in wanted and key.isdigit():
            wanted[kind].add(int(key))
    return wanted


def _target_names(entries: list[AuditEntry]) -> dict[str, str]:
    """``"meeting:12"`` → "cuộc họp “Họp giao ban”", for every target of ``entries`` that still exists."""
    names: dict[str, str] = {}
    gate_ids = {e.target.partition(":")[2] for e in entries if e.target.startswith("gate:")}
    for gate in Gate.select().where(Gate.gate_id.in_(sorted(gate_ids))) if gate_ids else []:
        names[f"gate:{gate.gate_id}"] = _("cổng %(name)s", name=gate.name or gate.gate_id)
    for kind, ids in _ids(entries).items():
        if not ids:
            continue
        model = _KINDS[kind]
        for row in model.select().where(model.id.in_(sorted(ids))):
            names[f"{kind}:{row.id}"] = _describe(kind, row)
    return names


def _describe(kind: str, row: Any) -> str:
    if kind == "meeting":
        return _("cuộc họp “%(title)s”", title=row.title)
    if kind == "invitation":
        if row.number:
            return _("thư mời %(number)s", number=row.number)
        return _("dự thảo thư mời cho %(organisation)s", organisation=row.organisation.name)
    if kind == "organisation":
        return _("đơn vị %(name)s", name=row.name)
    if kind == "venue":
        return _("địa điểm %(name)s", name=row.name)
    if kind == "delegate":
        return row.name
    if kind == "user":
        return _("tài khoản %(name)s", name=row.full_name or row.username)
    return str(row.name)


def actor_names(usernames: Iterable[str]) -> dict[str, str]:
    """Each audit actor's name: a user's full name, an organisation's invitation, the integration, the system."""
    usernames = set(usernames)
    names = {user.username: user.full_name or user.username
             for user in User.select().where(User.username.in_(sorted(usernames)))}
    for actor in usernames - set(names):
        kind, _sep, key = actor.partition(":")
        if kind == "invitation" and key:
            names[actor] = _("Đơn vị được mời (thư mời %(number)s)", number=key)
        elif actor == "api-token":
            names[actor] = _("Ứng dụng kết nối (mã API chung)")
        elif actor in ("system", "anonymous"):
            names[actor] = _("Hệ thống") if actor == "system" else _("Người chưa đăng nhập")
        else:
            names[actor] = actor
    return names


def sentence(action: str, actor: str, target: str, details: Mapping[str, Any]) -> str:
    """The sentence of one entry, given its actor's and target's names."""
    template = SENTENCES.get(action)
    fields = {key: ("" if value is None else value) for key, value in details.items()}
    if "channel" in fields:
        fields["channel"] = CHANNELS.get(str(fields["channel"]), fields["channel"])
    fields.update(actor=actor, target=target)
    if template is not None:
        try:
            return str(template) % fields
        except (KeyError, TypeError, ValueError):
            pass
    return _("%(actor)s: thao tác %(action)s với %(target)s", actor=actor, action=action, target=target)


def audit_lines(entries: list[AuditEntry]) -> list[AuditLine]:
    """The page's lines for ``entries``."""
    actors, targets = actor_names(entry.actor for entry in entries), _target_names(entries)
    lines = []
    for entry in entries:
        try:
            details = json.loads(entry.details or "{}")
        except ValueError:
            details = {}
        if not isinstance(details, dict):
            details = {}
        text = sentence(entry.action, actors.get(entry.actor, entry.actor), targets.get(entry.target, entry.target),
                        details)
        lines.append(AuditLine(entry=entry, sentence=text, details=details))
    return lines


def action_label(action: str) -> str:
    """The filter's name of an action: its sentence without the actor, else the code."""
    template = SENTENCES.get(action)
    if template is None:
        return action
    return str(template).replace("%(actor)s ", "").split(" %(")[0].split(" (")[0].capitalize()
