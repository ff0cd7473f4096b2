"""Reason codes carried by every decision, refusal and rejected payload, with guard-facing texts."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a scan was allowed or refused, or why a payload was rejected."""

    OK = "ok"
    UNKNOWN_CODE = "unknown_code"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    REVOKED = "revoked"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_VENUE = "wrong_venue"
    ALREADY_INSIDE = "already_inside"
    MALFORMED = "malformed"
    BAD_CHECKSUM = "bad_checksum"
    TOO_LONG = "too_long"
    UNSUPPORTED_VERSION = "unsupported_version"
    MEETING_CANCELLED = "meeting_cancelled"
    MANUAL_OPEN = "manual_open"
    DOOR_FORCED = "door_forced"
    NOT_PASSED = "not_passed"
    INTERNAL_ERROR = "internal_error"
    UNKNOWN_GATE = "unknown_gate"
    GATE_MISMATCH = "gate_mismatch"
    LOCKED_DOWN = "locked_down"
    STALE_COMMAND = "stale_command"
    WRONG_GATE = "wrong_gate"
    COMMAND_TIMEOUT = "command_timeout"
    UNKNOWN_ACTION = "unknown_action"
    SYNC_FAILED = "sync_failed"
    EMERGENCY_ACTIVE = "emergency_active"
    RELEASED = "released"
    NOT_CONNECTED = "not_connected"
    DUPLICATE = "duplicate"
    ID_CARD = "id_card"
    BOOKING_TOO_LATE = "booking_too_late"
    VENUE_DOUBLE_BOOKED = "venue_double_booked"


# (Vietnamese, English): what the guard's display and the dashboard say.
REASON_TEXT: dict[Reason, tuple[str, str]] = {
    Reason.OK: ("Hợp lệ, mời vào", "Valid, please enter"),
    Reason.UNKNOWN_CODE: ("Mã không có trong danh sách", "Code not on the list"),
    Reason.BAD_SIGNATURE: ("Mã giả hoặc đã bị sửa", "Forged or altered code"),
    Reason.UNKNOWN_KEY: ("Mã ký bằng khóa không được tin cậy", "Code signed by an untrusted key"),
    Reason.REVOKED: ("Mã đã bị thu hồi", "Code revoked"),
    Reason.NOT_YET_VALID: ("Chưa đến giờ vào", "Not valid yet"),
    Reason.EXPIRED: ("Mã đã hết hạn", "Code expired"),
    Reason.WRONG_VENUE: ("Sai địa điểm họp", "Wrong venue"),
    Reason.ALREADY_INSIDE: ("Mã đã được dùng để vào", "Code already used to enter"),
    Reason.MALFORMED: ("Không đọc được mã", "Unreadable code"),
    Reason.BAD_CHECKSUM: ("Mã nhập sai, vui lòng kiểm tra lại", "Mistyped code, please check"),
    Reason.TOO_LONG: ("Dữ liệu quét quá dài", "Scan too long"),
    Reason.UNSUPPORTED_VERSION: ("Phiên bản dữ liệu không hỗ trợ", "Unsupported payload version"),
    Reason.MEETING_CANCELLED: ("Cuộc họp đã bị hủy", "Meeting cancelled"),
    Reason.MANUAL_OPEN: ("Bảo vệ mở cổng thủ công", "Opened manually by the guard"),
    Reason.DOOR_FORCED: ("Cảnh báo: qua cổng không được phép", "Alarm: unauthorised passage"),
    Reason.NOT_PASSED: ("Không qua cổng trong thời gian mở", "Did not pass while unlocked"),
    Reason.INTERNAL_ERROR: ("Lỗi hệ thống, gọi bảo vệ", "System error, call the guard"),
    Reason.UNKNOWN_GATE: ("Cổng chưa được đăng ký", "Gate not registered"),
    Reason.GATE_MISMATCH: ("Cổng gửi sai kênh", "Gate published on another gate's topic"),
    Reason.LOCKED_DOWN: ("Cổng đang bị khóa, không cho vào", "Gate locked down, no entry"),
    Reason.STALE_COMMAND: ("Lệnh đã quá hạn, cổng không thực hiện", "Command too old, not executed"),
    Reason.WRONG_GATE: ("Lệnh gửi nhầm cổng", "Command addressed to another gate"),
    Reason.COMMAND_TIMEOUT: ("Cổng không trả lời lệnh kịp thời", "The gate did not answer in time"),
    Reason.UNKNOWN_ACTION: ("Lệnh không hợp lệ", "Unknown command"),
    Reason.SYNC_FAILED: ("Không tải được dữ liệu mới từ trung tâm", "Could not load fresh data from central"),
    Reason.EMERGENCY_ACTIVE: ("Cổng đang mở khẩn cấp", "Emergency release active"),
    Reason.RELEASED: ("Cổng đang được mở tự do", "Gate released (free passage)"),
    Reason.NOT_CONNECTED: ("Trung tâm chưa kết nối được máy chủ tin nhắn", "Central not connected to the broker"),
    Reason.DUPLICATE: ("Đã tồn tại", "Already exists"),
    Reason.ID_CARD: ("Đây là thẻ CCCD. Vui lòng đến bàn tiếp đón.",
                     "This is a citizen ID card. Please go to the reception desk."),
    Reason.BOOKING_TOO_LATE: ("Cuộc họp có điểm cầu đăng ký quá muộn, cần lãnh đạo cho phép",
                              "A meeting with remote points booked too late needs a leader's override"),
    Reason.VENUE_DOUBLE_BOOKED: ("Địa điểm đã được đặt cho cuộc họp khác trùng giờ",
                                 "The venue is booked by another meeting at that time"),
}


def describe(reason: Reason | str, lang: str = "vi") -> str:
    """Return the human text for a reason code, Vietnamese by default, English with ``lang="en"``."""
    try:
        vi, en = REASON_TEXT[Reason(reason)]
    except ValueError:
        return str(reason)
    return en if lang == "en" else vi
