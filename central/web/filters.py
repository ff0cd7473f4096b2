"""Jinja filters: local (Vietnam) time, and labels of states and channels."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask
from flask_babel import gettext as _

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

STATUS_LABELS = {
    "draft": "Dự thảo",
    "open": "Đang mở đăng ký",
    "closed": "Đã đóng đăng ký",
    "held": "Đã họp",
    "cancelled": "Đã hủy",
    "returned": "Bị trả lại",
    "approved": "Đã duyệt",
    "sent": "Đã gửi",
    "queued": "Đang chờ gửi",
    "failed": "Gửi lỗi",
    "email": "Thư điện tử",
    "sms": "Tin nhắn SMS",
    "main": "Hội trường chính",
    "remote": "Điểm cầu",
}


def localtime(value: datetime | None, fmt: str = "%H:%M %d/%m/%Y") -> str:
    """Format an aware datetime in Vietnam time ("" for None)."""
    if value is None:
        return ""
    return value.astimezone(LOCAL_TZ).strftime(fmt)


def label(value: str | None) -> str:
    """Return the translated label of a state, channel or venue kind."""
    if value is None:
        return ""
    return _(STATUS_LABELS[value]) if value in STATUS_LABELS else value


def register_filters(app: Flask) -> None:
    """Register the filters on ``app``."""
    app.add_template_filter(localtime, "localtime")
    app.add_template_filter(label, "label")
