"""Why a message did not go, in Vietnamese, for the people who read the sending status and must act on it.

Every failed try of an e-mail or an SMS becomes a :class:`~central.outbound.engine.JobFailedError` whose text
is shown as is on the invitation's page ("Lỗi gần nhất") and in the API's ``last_error``. A failure that another
try cannot cure (a number that is not a mobile one, an address the mail server refuses) is ``permanent``: it is
not retried and its text says what to correct; the others say that central will try again.
"""

from __future__ import annotations

import re
import smtplib
import socket

from central.outbound.engine import JobFailedError
from central.outbound.sms import SmsError, SmsResult
from protocols.logs import mask_email, mask_phone

_DIGITS = re.compile(r"\D")

PERMANENT_SMS = frozenset({SmsError.INVALID_PHONE, SmsError.EMPTY_TEXT, SmsError.TOO_LONG})
"""SMS errors that the same message to the same number would hit again."""


def phone_problem(phone: str) -> str:
    """Say why ``phone`` is not a Vietnamese mobile number (a landline, too short, ...), in Vietnamese; the
    number is shown masked, as everywhere on the pages."""
    digits = _DIGITS.sub("", phone or "")
    shown = mask_phone(phone)
    if digits.startswith("84"):
        digits = "0" + digits[2:]
    if not digits:
        return "Chưa có số điện thoại"
    if digits.startswith("02") and len(digits) == 11:
        return f"Số {shown} là số máy bàn (cố định), không nhận được tin nhắn SMS"
    if digits.startswith("0") and len(digits) < 10:
        return f"Số {shown} thiếu chữ số (số di động có 10 chữ số)"
    if digits.startswith("0") and len(digits) > 11:
        return f"Số {shown} thừa chữ số (số di động có 10 chữ số)"
    return f"Số {shown} không phải số di động Việt Nam"


_SMS_TEXT = {
    SmsError.EMPTY_TEXT: "Nội dung tin nhắn trống",
    SmsError.TOO_LONG: "Tin nhắn dài quá 160 ký tự",
    SmsError.PORT_UNAVAILABLE: "Không mở được cổng của modem GSM",
    SmsError.MODEM_ERROR: "Modem GSM từ chối gửi tin nhắn",
    SmsError.TIMEOUT: "Modem hoặc cổng SMS không trả lời kịp",
    SmsError.CONNECTION_FAILED: "Không kết nối được cổng SMS",
    SmsError.HTTP_STATUS: "Cổng SMS từ chối yêu cầu",
    SmsError.INTERNAL_ERROR: "Lỗi nội bộ khi gửi SMS",
}


def sms_failure(result: SmsResult, phone: str) -> JobFailedError:
    """Return the failure of an SMS try from the sender's result (permanent for a bad number or text)."""
    error = result.error or SmsError.INTERNAL_ERROR
    permanent = error in PERMANENT_SMS
    if error == SmsError.INVALID_PHONE:
        text = f"{phone_problem(phone)}. Hãy sửa số di động của đơn vị rồi bấm “Gửi lại”."
    else:
        text = _SMS_TEXT.get(error, "Không gửi được SMS")
        if result.detail:
            text += f" ({result.detail})"
        text += ". Không tự gửi lại." if permanent else ". Hệ thống sẽ tự gửi lại."
    return JobFailedError(text, permanent=permanent)


def mail_failure(failed: JobFailedError, address: str) -> JobFailedError:
    """Return ``failed`` (from :func:`central.outbound.worker.send_mail`) told in Vietnamese, same permanence."""
    cause = failed.__cause__
    if isinstance(cause, smtplib.SMTPRecipientsRefused):
        codes = ", ".join(f"{code} {reply.decode('utf-8', 'replace') if isinstance(reply, bytes) else reply}"
                          for code, reply in cause.recipients.values())
        what = f"Máy chủ thư từ chối địa chỉ {mask_email(address)} ({codes})"
    elif isinstance(cause, smtplib.SMTPSenderRefused):
        what = f"Máy chủ thư từ chối địa chỉ gửi đi ({cause.smtp_code})"
    elif isinstance(cause, smtplib.SMTPResponseException):
        what = f"Máy chủ thư trả lời lỗi {cause.smtp_code}"
    elif isinstance(cause, (ConnectionError, socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected)):
        what = f"Không kết nối được máy chủ thư ({type(cause).__name__})"
    elif isinstance(cause, OSError):
        what = f"Lỗi mạng khi gửi thư ({type(cause).__name__})"
    else:
        what = f"Không gửi được thư ({failed})"
    if failed.permanent:
        return JobFailedError(f"{what}. Hãy kiểm tra, sửa địa chỉ e-mail của đơn vị rồi bấm “Gửi lại”.",
                              permanent=True)
    return JobFailedError(f"{what}. Hệ thống sẽ tự gửi lại.")
