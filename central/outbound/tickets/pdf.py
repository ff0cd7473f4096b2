"""The printable ticket ("thẻ dự họp"): one A5 page with the delegate, the meeting, the QR and the code.

Compact codes also get a Code128 barcode for 1-D scanners. Text is set in DejaVu Sans (embedded, subset),
which covers Vietnamese; the font is looked up in the usual system places or at ``VAORA_PDF_FONT``.

Parsing the full DejaVu file costs about 40 ms per font per PDF, so each font is first cut down once per
process to the Latin and Vietnamese ranges (a 60 kB file in a cache directory); a ticket then takes ~30 ms.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import barcode
import segno
from barcode.writer import ImageWriter
from fontTools import subset
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import TextMode

from protocols.codes import Scheme, format_compact

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
)
QR_SIDE_MM = 60
TICKET_UNICODES: tuple[int, ...] = (
    *range(0x20, 0x7F),  # Basic Latin
    *range(0xA0, 0x180),  # Latin-1 and Latin Extended-A (Ă ă Đ đ Ĩ ĩ Ũ ũ and the neighbours' letters)
    0x1A0,
    0x1A1,
    0x1AF,
    0x1B0,  # Ơ ơ Ư ư
    *range(0x300, 0x310),
    0x323,  # combining tones and dot below (text that is not NFC)
    *range(0x1EA0, 0x1EFA),  # Vietnamese letters with tone marks (ạ ả ấ ... ỹ)
    *range(0x2010, 0x2027),  # dashes, quotes, bullet, ellipsis
    0x20AB,  # ₫
)
"""The characters a ticket may show: Vietnamese and Latin text (names are validated NFC text)."""


class TicketFontMissingError(RuntimeError):
    """No font that renders Vietnamese was found; install fonts-dejavu-core or set VAORA_PDF_FONT."""


@dataclass(frozen=True)
class TicketData:
    """What a ticket shows; datetimes are aware and printed in Hà Nội time."""

    delegate_name: str
    position: str
    organisation: str
    meeting_title: str
    starts_at: datetime
    ends_at: datetime
    venue: str
    invitation_number: str
    code: str
    scheme: Scheme | str


@lru_cache(maxsize=1)
def font_file() -> Path:
    """Return the DejaVu Sans file (``VAORA_PDF_FONT`` overrides it)."""
    override = os.environ.get("VAORA_PDF_FONT")
    if override:
        path = Path(override)
        if not path.is_file():
            raise TicketFontMissingError(f"VAORA_PDF_FONT={override!r} is not a file")
        return path
    for directory in FONT_DIRS:
        if (directory / "DejaVuSans.ttf").is_file():
            return directory / "DejaVuSans.ttf"
    raise TicketFontMissingError(
        "DejaVuSans.ttf not found; install fonts-dejavu-core or set VAORA_PDF_FONT"
    )


def _cache_dir() -> Path:
    directory = Path(
        os.environ.get("VAORA_CACHE_DIR") or Path(tempfile.gettempdir()) / f"vaora-{os.getuid()}"
    )
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@lru_cache(maxsize=4)
def ticket_font(source: Path) -> Path:
    """Return a copy of ``source`` cut down to :data:`TICKET_UNICODES` (made once, kept in a cache dir)."""
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = _cache_dir() / f"{source.stem}-vi-{key}.ttf"
    if not target.is_file():
        options = subset.Options()
        options.layout_features = []
        options.hinting = False
        options.name_IDs = ["*"]
        options.drop_tables = [*options.drop_tables, "FFTM"]
        font = TTFont(str(source))
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=TICKET_UNICODES)
        subsetter.subset(font)
        partial = target.with_suffix(f".{os.getpid()}.tmp.ttf")
        font.save(str(partial))
        os.replace(partial, target)
    return target


def _local_range(starts_at: datetime, ends_at: datetime) -> str:
    start, end = starts_at.astimezone(LOCAL_TZ), ends_at.astimezone(LOCAL_TZ)
    if start.date() == end.date():
        return f"{start:%H:%M} - {end:%H:%M} ngày {start:%d/%m/%Y}"
    return f"{start:%H:%M} ngày {start:%d/%m/%Y} - {end:%H:%M} ngày {end:%d/%m/%Y}"


def _qr_png(code: str) -> io.BytesIO:
    buffer = io.BytesIO()
    segno.make(code, error="m", boost_error=False, micro=False).save(buffer, kind="png", scale=10, border=4)
    buffer.seek(0)
    return buffer


def _code128_png(code: str) -> io.BytesIO:
    image = barcode.get("code128", code, writer=ImageWriter()).render(
        {"write_text": False, "module_width": 0.3, "module_height": 10.0, "quiet_zone": 4.0, "dpi": 300}
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


def _style(pdf: FPDF, size: float, *, bold: bool = False) -> None:
    pdf.set_font("DejaVu", "", size)
    pdf.text_mode = TextMode.FILL_STROKE if bold else TextMode.FILL


def render_ticket_pdf(ticket: TicketData) -> bytes:
    """Return the ticket as PDF bytes."""
    font = ticket_font(font_file())
    pdf = FPDF(orientation="portrait", unit="mm", format=(148, 210))  # A5
    pdf.set_title(f"Thẻ dự họp - {ticket.delegate_name}")
    pdf.set_creator("vaora")
    pdf.set_auto_page_break(auto=False)
    pdf.set_margins(12, 12, 12)
    # One embedded font keeps a ticket near 35 ms; headings are emboldened by stroking the glyph outlines.
    pdf.add_font("DejaVu", "", str(font))
    pdf.set_line_width(0.2)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    _style(pdf, 15, bold=True)
    pdf.cell(width, 8, "THẺ DỰ HỌP", align="C", new_x="LMARGIN", new_y="NEXT")
    _style(pdf, 10)
    pdf.multi_cell(width, 5, ticket.meeting_title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    _style(pdf, 16, bold=True)
    pdf.multi_cell(width, 8, ticket.delegate_name, align="C", new_x="LMARGIN", new_y="NEXT")
    _style(pdf, 10)
    if ticket.position:
        pdf.multi_cell(width, 5, ticket.position, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(width, 5, ticket.organisation, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    rows = (
        ("Thời gian", _local_range(ticket.starts_at, ticket.ends_at)),
        ("Địa điểm", ticket.venue),
        ("Thư mời số", ticket.invitation_number),
    )
    for label, value in rows:
        _style(pdf, 9, bold=True)
        pdf.cell(26, 5, f"{label}:")
        _style(pdf, 9)
        pdf.multi_cell(width - 26, 5, value, new_x="LMARGIN", new_y="NEXT")

    pdf.ln(2)
    pdf.image(_qr_png(ticket.code), x=(pdf.w - QR_SIDE_MM) / 2, y=pdf.get_y(), w=QR_SIDE_MM, h=QR_SIDE_MM)
    pdf.set_y(pdf.get_y() + QR_SIDE_MM + 1)

    if Scheme(ticket.scheme) is Scheme.COMPACT:
        _style(pdf, 14, bold=True)
        pdf.cell(width, 7, format_compact(ticket.code), align="C", new_x="LMARGIN", new_y="NEXT")
        bar_width = 80
        pdf.image(_code128_png(ticket.code), x=(pdf.w - bar_width) / 2, y=pdf.get_y() + 1, w=bar_width, h=14)
        pdf.set_y(pdf.get_y() + 17)

    _style(pdf, 8)
    pdf.multi_cell(
        width,
        4,
        "Xuất trình mã QR (hoặc mã vạch) tại cổng ra vào. Thẻ này là của riêng người được cử, "
        "không chia sẻ cho người khác.",
        align="C",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    return bytes(pdf.output())
