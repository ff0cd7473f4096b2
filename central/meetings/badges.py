"""Badges ("thẻ đeo") and name cards ("biển tên") for a meeting's delegates, printable on A6 or A7 paper.

One person per page, in protocol order (:func:`central.invitations.protocol.protocol_key`: the organisation's rank,
the delegate's position, the name). Delegates whose code is revoked (replaced, cancelled) and walk-ins registered at
the desk get none. Text is DejaVu Sans (bold for the name), found beside ``VAORA_PDF_FONT``; a long name shrinks
to fit the width, down to a floor, then wraps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF

from central.desk.models import Walkin
from central.invitations.letter import font_files
from central.invitations.protocol import position_order, protocol_key
from central.meetings.models import Meeting
from central.meetings.services import delegates_of

SIZES = {"A6": (105.0, 148.0), "A7": (74.0, 105.0)}
"""Paper sizes in mm, portrait (width, height)."""
KINDS = ("the-deo", "bien-ten")
"""A badge to wear (portrait) or a name card for the table (landscape)."""
SANS_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}


@dataclass(frozen=True)
class BadgePerson:
    """Who a badge names."""

    name: str
    position: str
    organisation: str


def badge_people(meeting: Meeting) -> list[BadgePerson]:
    """The meeting's delegates with a valid code, not walk-ins, in protocol order."""
    walkins = {row.delegate_id for row in Walkin.select(Walkin.delegate).where(
        (Walkin.meeting == meeting) & Walkin.delegate.is_null(False))}
    order = position_order()
    rows = [d for d in delegates_of(meeting) if d.id not in walkins]
    rows.sort(key=lambda d: protocol_key(d.invitation.organisation.protocol_rank, d.invitation.organisation.name,
                                         d.position, d.name, order))
    return [BadgePerson(d.name, d.position, d.invitation.organisation.name) for d in rows]


def _fit(pdf: FPDF, text: str, width: float, largest: float, smallest: float, style: str = "B") -> float:
    size = largest
    while size > smallest:
        pdf.set_font("sans", style, size)
        if pdf.get_string_width(text) <= width:
            break
        size -= 0.5
    pdf.set_font("sans", style, size)
    return size


def render_badges(meeting_title: str, people: list[BadgePerson], *, kind: str, size: str, font: Path) -> bytes:
    """The PDF: one page per person; ``kind`` is one of :data:`KINDS`, ``size`` one of :data:`SIZES`."""
    if kind not in KINDS or size not in SIZES:
        raise ValueError(f"unknown badge kind or size: {kind!r} {size!r}")
    short, long = SIZES[size]
    scale = short / SIZES["A6"][0]  # A7 is A6 shrunk by 1/sqrt(2)
    card = kind == "bien-ten"
    pdf = FPDF(orientation="landscape" if card else "portrait", unit="mm", format=(short, long))
    pdf.set_title(f"{'Biển tên' if card else 'Thẻ đại biểu'} - {meeting_title}")
    pdf.set_creator("vaora")
    for style, path in font_files(font, SANS_FILES).items():
        pdf.add_font("sans", style, str(path))
    margin = 8 * scale
    pdf.set_margins(margin, margin, margin)
    pdf.set_auto_page_break(auto=False)
    for person in people:
        pdf.add_page()
        width = pdf.w - 2 * margin
        if card:
            pdf.set_y(pdf.h * 0.22)
        else:
            pdf.set_font("sans", "", 9 * scale)
            pdf.multi_cell(width, 4.5 * scale, meeting_title, align="C", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3 * scale)
            pdf.set_fill_color(160, 20, 20)
            pdf.set_text_color(255, 255, 255)
            pdf.set_font("sans", "B", 14 * scale)
            pdf.cell(width, 10 * scale, "ĐẠI BIỂU", align="C", fill=True, new_x="LMARGIN", new_y="NEXT")
            pdf.set_text_color(0, 0, 0)
            pdf.set_y(pdf.h * 0.42)
        largest = (30 if card else 22) * scale
        points = _fit(pdf, person.name, width, largest, largest * 0.55)
        pdf.multi_cell(width, points * 0.5, person.name, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3 * scale)
        for text, most in ((person.position, 14), (person.organisation, 13)):
            if text:
                _fit(pdf, text, width, most * scale, most * scale * 0.7, style="")
                pdf.multi_cell(width, 6.5 * scale, text, align="C", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
