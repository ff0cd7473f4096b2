"""The invitation as sent to an organisation: a formal giấy mời as a PDF with Vietnamese text (fpdf2 + TrueType
fonts), and an e-mail with a Vietnamese text part, an HTML part and the PDF attached.

The PDF follows the layout of administrative documents in Decree 30/2020/NĐ-CP (Appendix I): at the top left the
parent body and the issuing body (capitals, the body in bold, a short rule under it) and the number and symbol
("Số: 12/GM-UBND"); at the top right the Quốc hiệu ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM") and the Tiêu ngữ ("Độc
lập - Tự do - Hạnh phúc", bold, underlined) over the place-and-date line (italic: "Hà Nội, ngày 07 tháng 12 năm
2026"); the title "GIẤY MỜI"; the body; at the bottom left "Nơi nhận" and at the bottom right the signer's
authority, position and name. Text is set in DejaVu Serif (regular, bold, italic) found beside the configured font
(``VAORA_PDF_FONT``) or in the system's font folders; without it, every style falls back to the configured font.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NATIONAL_TITLE = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
TITLE = "GIẤY MỜI"
SERIF_FILES = {"": "DejaVuSerif.ttf", "B": "DejaVuSerif-Bold.ttf", "I": "DejaVuSerif-Italic.ttf",
               "BI": "DejaVuSerif-BoldItalic.ttf"}
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"), Path("/usr/local/share/fonts"))


@dataclass(frozen=True)
class Letterhead:
    """Who issues the letter and who signs it (from :mod:`central.invitations.letterhead`)."""

    parent_name: str  # "UBND tỉnh Quảng Ngãi"; empty for a body without a parent on the letterhead
    name: str  # "Văn phòng"
    place: str  # "Quảng Ngãi", the place of the date line
    signing_authority: str  # "TL. CHỦ TỊCH", "KT. CHÁNH VĂN PHÒNG"; may be empty
    signer_position: str  # "CHÁNH VĂN PHÒNG"
    signer_name: str
    recipients: tuple[str, ...]  # "Nơi nhận" lines besides "Như trên" and "Lưu: VT"

    @property
    def issuer(self) -> str:
        """The body as the text names it: "Văn phòng UBND tỉnh Quảng Ngãi"."""
        return " ".join(part for part in (self.name, self.parent_name) if part)


OFFICE = Letterhead(parent_name="UBND", name="Văn phòng", place="", signing_authority="", signer_position="",
                    signer_name="", recipients=())
"""The letterhead used when none is given (a letter built before issuing bodies existed)."""


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
    letterhead: Letterhead = OFFICE
    issued_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    """The date of the date line: the approval's (a draft's preview: now)."""
    draft: bool = False
    """A preview before approval: marked "DỰ THẢO" above the letterhead."""


def date_line(place: str, moment: datetime) -> str:
    """The place-and-date line: "Hà Nội, ngày 07 tháng 12 năm 2026" (Decree 30: a day below 10 and the months
    1 and 2 get a leading zero)."""
    day = moment.astimezone(LOCAL_TZ).date()
    month = f"{day.month:02d}" if day.month <= 2 else str(day.month)
    text = f"ngày {day.day:02d} tháng {month} năm {day.year}"
    return f"{place}, {text}" if place else text.capitalize()


def recipients_of(letterhead: Letterhead) -> list[str]:
    """The "Nơi nhận" lines: "- Như trên;", the configured ones, and "- Lưu: VT." unless one says where it is kept."""
    lines = ["- Như trên;"]
    extra = [line.lstrip("-+• ").rstrip(";. ") for line in letterhead.recipients]
    extra = [line for line in extra if line]
    keep = [line for line in extra if line.casefold().startswith("lưu")]
    lines += [f"- {line};" for line in extra if line not in keep]
    lines += [f"- {line}." for line in keep] or ["- Lưu: VT."]
    return lines


def _local(moment: datetime) -> str:
    return moment.astimezone(LOCAL_TZ).strftime("%H:%M ngày %d/%m/%Y")


def _lines(letter: InvitationLetter) -> list[str]:
    lines = [
        f"Kính gửi: {letter.organisation}",
        "",
        f"{letter.letterhead.issuer} trân trọng kính mời đại diện Quý đơn vị tham dự cuộc họp: {letter.meeting_title}.",
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
        "Trân trọng kính mời./.",
    ]
    return lines


def font_files(font: Path, files: dict[str, str] = SERIF_FILES) -> dict[str, Path]:
    """Font files by style (``files``: style -> file name, "" the regular) found beside ``font`` or in the system's
    font folders; a missing style falls back to the regular, a missing regular to ``font`` for every style."""
    for directory in (font.parent, *FONT_DIRS):
        if (directory / files[""]).is_file():
            found = {style: directory / name for style, name in files.items()}
            regular = found[""]
            return {style: path if path.is_file() else regular for style, path in found.items()}
    return dict.fromkeys(files, font)


def _header(pdf: FPDF, letter: InvitationLetter, left_w: float, right_w: float) -> None:
    """The two columns at the top: the bodies and the number on the left, Quốc hiệu and Tiêu ngữ on the right."""
    head = letter.letterhead
    top, left, right = pdf.get_y(), pdf.l_margin, pdf.l_margin + left_w
    pdf.set_xy(left, top)
    if head.parent_name:
        pdf.set_font("serif", "", 11)
        pdf.multi_cell(left_w, 6, head.parent_name.upper(), align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_font("serif", "B", 11)
    pdf.multi_cell(left_w, 6, head.name.upper(), align="C", new_x="LEFT", new_y="NEXT")
    rule_y = pdf.get_y() + 0.5
    pdf.line(left + left_w / 2 - 12, rule_y, left + left_w / 2 + 12, rule_y)
    pdf.set_y(rule_y + 2)
    pdf.set_x(left)
    pdf.set_font("serif", "", 12)
    pdf.cell(left_w, 7, f"Số: {letter.number}", align="C", new_x="LEFT", new_y="NEXT")
    left_bottom = pdf.get_y()

    pdf.set_xy(right, top)
    pdf.set_font("serif", "B", 11)
    pdf.cell(right_w, 6, NATIONAL_TITLE, align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_font("serif", "B", 12)
    pdf.cell(right_w, 6, MOTTO, align="C", new_x="LEFT", new_y="NEXT")
    motto_w = pdf.get_string_width(MOTTO)
    rule_y = pdf.get_y() + 0.5
    pdf.line(right + (right_w - motto_w) / 2, rule_y, right + (right_w + motto_w) / 2, rule_y)
    pdf.set_xy(right, rule_y + 2)
    pdf.set_font("serif", "I", 12)
    pdf.cell(right_w, 7, date_line(head.place, letter.issued_at), align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_xy(pdf.l_margin, max(left_bottom, pdf.get_y()) + 8)


def _footer(pdf: FPDF, letter: InvitationLetter, left_w: float, right_w: float) -> None:
    """"Nơi nhận" on the left, the signer on the right; kept together on one page."""
    head = letter.letterhead
    signer = [line.upper() for line in (head.signing_authority, head.signer_position) if line]
    needed = 6 + 5 * max(len(recipients_of(head)), 1 + len(signer) * 1.3 + 6)
    if pdf.get_y() + needed > pdf.h - pdf.b_margin:
        pdf.add_page()
    top, left, right = pdf.get_y() + 4, pdf.l_margin, pdf.l_margin + left_w
    pdf.set_xy(left, top)
    pdf.set_font("serif", "BI", 12)
    pdf.cell(left_w, 6, "Nơi nhận:", new_x="LEFT", new_y="NEXT")
    pdf.set_font("serif", "", 11)
    for line in recipients_of(head):
        pdf.multi_cell(left_w, 5, line, align="L", new_x="LEFT", new_y="NEXT")
    pdf.set_xy(right, top)
    pdf.set_font("serif", "B", 12)
    for line in signer or [head.name.upper()]:
        pdf.multi_cell(right_w, 6, line, align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_xy(right, pdf.get_y() + 24)  # room for the signature and the seal
    if head.signer_name:
        pdf.cell(right_w, 6, head.signer_name, align="C", new_x="LEFT", new_y="NEXT")


def render_pdf(letter: InvitationLetter, font: Path) -> bytes:
    """Return the giấy mời as an A4 PDF (one page, or two for a long agenda); ``font`` is a TrueType font with
    Vietnamese, used where DejaVu Serif is missing."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"Giấy mời số {letter.number}")
    pdf.set_author(letter.letterhead.issuer)
    pdf.set_creator("vaora")
    for style, path in font_files(font).items():
        pdf.add_font("serif", style, str(path))
    # Decree 30's margins: top and bottom 20-25 mm, left 30-35 mm, right 15-20 mm.
    pdf.set_margins(30, 20, 15)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_line_width(0.3)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    left_w, right_w = width * 0.4, width * 0.6
    if letter.draft:
        pdf.set_xy(pdf.l_margin, 8)
        pdf.set_font("serif", "B", 11)
        pdf.set_text_color(180, 0, 0)
        pdf.cell(width, 6, "DỰ THẢO", align="R")
        pdf.set_text_color(0, 0, 0)
        pdf.set_xy(pdf.l_margin, pdf.t_margin)
    _header(pdf, letter, left_w, right_w)
    pdf.set_font("serif", "B", 14)
    pdf.cell(width, 8, TITLE, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("serif", "", 12)
    for line in _lines(letter):
        if not line:
            pdf.ln(2)
        elif line.startswith("Kính gửi:"):
            pdf.multi_cell(width, 7, line, align="C", new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.multi_cell(width, 7, line, align="J", new_x="LMARGIN", new_y="NEXT")
    _footer(pdf, letter, left_w, right_w)
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
    message.set_content("\n".join(lines) + f"\n\n{letter.letterhead.issuer}\n")
    esc = html.escape
    paragraphs = "".join(
        f'<p><a href="{esc(line)}">{esc(line)}</a></p>' if line == letter.link else f"<p>{esc(line)}</p>"
        for line in lines
        if line
    )
    body = (
        '<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"></head><body>'
        f"<h1>Thư mời số {esc(letter.number)}</h1>{paragraphs}"
        f"<p>Giấy mời kèm theo ở tệp PDF đính kèm.</p><p>{esc(letter.letterhead.issuer)}</p></body></html>"
    )
    message.add_alternative(body, subtype="html")
    safe_number = "".join(ch if ch.isalnum() else "-" for ch in letter.number)
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"thu-moi-{safe_number}.pdf")
    return message
