"""The invitation as sent to an organisation: a PDF with Vietnamese text (fpdf2 + a TrueType font) and an
e-mail with a Vietnamese text part, an HTML part and the PDF attached."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass(frozen=True)
class InvitationLetter:
    """What an invitation says; plain data, so the PDF and e-mail can be rendered anywhere."""

    number: str
    organisation: str
    meeting_title: str
    starts_at: datetime
    ends_at: datetime
    venue: str
    remote_points: tuple[str, ...]
    chair: str
    agenda: str
    registration_deadline: datetime | None
    delegate_limit: int | None
    link: str


def _local(moment: datetime) -> str:
    return moment.astimezone(LOCAL_TZ).strftime("%H:%M ngày %d/%m/%Y")


def _lines(letter: InvitationLetter) -> list[str]:
    lines = [
        f"Kính gửi: {letter.organisation}",
        "",
        f"Văn phòng UBND trân trọng kính mời đại diện Quý đơn vị tham dự cuộc họp: {letter.meeting_title}.",
        f"Thời gian: từ {_local(letter.starts_at)} đến {_local(letter.ends_at)}.",
        f"Địa điểm: {letter.venue}.",
    ]
    if letter.remote_points:
        lines.append("Điểm cầu: " + "; ".join(letter.remote_points) + ".")
    if letter.chair:
        lines.append(f"Chủ trì: {letter.chair}.")
    if letter.agenda:
        lines += ["", "Nội dung:", letter.agenda]
    lines.append("")
    if letter.delegate_limit:
        lines.append(f"Số đại biểu tối đa của đơn vị: {letter.delegate_limit}.")
    if letter.registration_deadline:
        lines.append(f"Hạn đăng ký: {_local(letter.registration_deadline)}.")
    lines += [
        "Quý đơn vị vui lòng đăng ký danh sách đại biểu tại địa chỉ:",
        letter.link,
        "",
        "Trân trọng kính mời.",
    ]
    return lines


def render_pdf(letter: InvitationLetter, font: Path) -> bytes:
    """Return the invitation as a one- or two-page A4 PDF; ``font`` is a TrueType font with Vietnamese."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"Thư mời số {letter.number}")
    pdf.set_author("Văn phòng UBND")
    pdf.add_font("body", "", str(font))
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    pdf.set_font("body", size=11)
    pdf.cell(0, 6, "ỦY BAN NHÂN DÂN", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, f"Số: {letter.number}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("body", size=16)
    pdf.cell(0, 10, "THƯ MỜI", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("body", size=12)
    pdf.multi_cell(0, 7, letter.meeting_title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("body", size=11)
    for line in _lines(letter):
        if line:
            pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.ln(3)
    return bytes(pdf.output())


def build_invitation_email(
    *, sender: str, to: str, letter: InvitationLetter, pdf: bytes
) -> EmailMessage:
    """Return the invitation e-mail: text and HTML parts, and the PDF attached as ``thu-moi-<n>.pdf``."""
    message = EmailMessage()
    message["Subject"] = f"Thư mời số {letter.number}: {letter.meeting_title}"
    message["From"] = sender
    message["To"] = to
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    lines = _lines(letter)
    message.set_content("\n".join(lines) + "\n\nVăn phòng UBND\n")
    esc = html.escape
    paragraphs = "".join(
        f'<p><a href="{esc(line)}">{esc(line)}</a></p>' if line == letter.link else f"<p>{esc(line)}</p>"
        for line in lines
        if line
    )
    body = (
        '<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"></head><body>'
        f"<h1>Thư mời số {esc(letter.number)}</h1>{paragraphs}"
        "<p>Thư mời kèm theo ở tệp PDF đính kèm.</p><p>Văn phòng UBND</p></body></html>"
    )
    message.add_alternative(body, subtype="html")
    safe_number = "".join(ch if ch.isalnum() else "-" for ch in letter.number)
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"thu-moi-{safe_number}.pdf")
    return message
