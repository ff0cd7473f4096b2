"""The attendance list of a meeting, grouped by organisation with arrival times, as CSV, XLSX and PDF.

The PDF is laid out to be printed and signed: one row per delegate with a signature column, organisations
in alphabetical order, times in Vietnam time (UTC+7), and Vietnamese text in an embedded DejaVu font.
Text that a spreadsheet would run as a formula (a name typed as ``=HYPERLINK(...)``) stays text: CSV cells
get a leading apostrophe, XLSX cells are stored as strings. :func:`export` is the one entry for the pages
and the command line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from central.attendance.services import meeting_attendance
from central.meetings.models import Meeting

VIETNAM = timezone(timedelta(hours=7), "ICT")
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
HEADERS = ("STT", "Họ và tên", "Chức vụ", "Đơn vị", "Giờ đến", "Cổng", "Ghi chú")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP, "CSV injection")."""


def is_formula_like(text: str) -> bool:
    """True when a spreadsheet would run ``text`` as a formula."""
    return text.startswith(FORMULA_PREFIXES)


def csv_cell(value: object) -> object:
    """Return ``value`` for a CSV cell: text a spreadsheet would run gets a leading apostrophe."""
    if isinstance(value, str) and is_formula_like(value):
        return "'" + value
    return value


@dataclass(frozen=True)
class AttendanceRow:
    """One delegate on the list."""

    number: int
    name: str
    position: str
    organisation: str
    arrived_at: datetime | None
    gate_id: str | None
    late: bool

    @property
    def arrival_text(self) -> str:
        """Arrival time in Vietnam time, or an empty string for someone absent."""
        return self.arrived_at.astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y") if self.arrived_at else ""

    @property
    def note(self) -> str:
        """"Vắng" for the absent, "Đến muộn" for late arrivals."""
        if self.arrived_at is None:
            return "Vắng"
        return "Đến muộn" if self.late else ""


@dataclass(frozen=True)
class AttendanceList:
    """The list for one meeting, rows grouped by organisation."""

    meeting_id: int
    title: str
    starts_at: datetime
    venue: str
    groups: list[tuple[str, list[AttendanceRow]]]

    @property
    def rows(self) -> list[AttendanceRow]:
        """Every row, in list order."""
        return [row for _, rows in self.groups for row in rows]

    @property
    def present(self) -> int:
        """How many delegates arrived."""
        return sum(1 for row in self.rows if row.arrived_at is not None)


def build_attendance_list(meeting: Meeting) -> AttendanceList:
    """Collect the list from central's database (revoked codes are left out: those people were replaced)."""
    data = meeting_attendance(meeting)
    groups: dict[str, list[AttendanceRow]] = {}
    number = 0
    for person in data["attendees"]:
        if person["revoked"]:
            continue
        number += 1
        arrived = datetime.fromisoformat(person["first_entry_at"]) if person["first_entry_at"] else None
        groups.setdefault(person["organisation"], []).append(
            AttendanceRow(
                number=number,
                name=person["name"],
                position=person["position"] or "",
                organisation=person["organisation"],
                arrived_at=arrived,
                gate_id=person["gate_id"],
                late=arrived is not None and arrived > meeting.starts_at,
            )
        )
    return AttendanceList(
        meeting_id=meeting.id,
        title=meeting.title,
        starts_at=meeting.starts_at,
        venue=meeting.venue,
        groups=list(groups.items()),
    )


def to_csv(attendance: AttendanceList) -> bytes:
    """CSV in UTF-8 with a byte-order mark, so Excel opens the Vietnamese text correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADERS)
    for row in attendance.rows:
        writer.writerow([csv_cell(value) for value in (
            row.number, row.name, row.position, row.organisation, row.arrival_text, row.gate_id or "", row.note
        )])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(attendance: AttendanceList) -> bytes:
    """An XLSX workbook: a title block, then each organisation's heading and its delegates."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)  # a new workbook's one sheet
    sheet.title = "Danh sách tham dự"
    sheet.append(["DANH SÁCH THÀNH PHẦN THAM DỰ"])
    sheet.append([attendance.title])
    _as_text(sheet[2])
    sheet.append([f"{attendance.starts_at.astimezone(VIETNAM):%H:%M %d/%m/%Y} — {attendance.venue}"])
    sheet.append([f"Có mặt: {attendance.present}/{len(attendance.rows)}"])
    sheet.append([])
    sheet.append(list(HEADERS))
    for cell in sheet[6]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDDDDD")
    sheet["A1"].font = Font(bold=True, size=14)
    for organisation, rows in attendance.groups:
        sheet.append([organisation])
        _as_text(sheet[sheet.max_row])
        sheet.cell(row=sheet.max_row, column=1).font = Font(bold=True, italic=True)
        for row in rows:
            sheet.append(
                [row.number, row.name, row.position, row.organisation,
                 row.arrived_at.astimezone(VIETNAM).replace(tzinfo=None) if row.arrived_at else None,
                 row.gate_id or "", row.note]
            )
            _as_text(sheet[sheet.max_row])
            sheet.cell(row=sheet.max_row, column=5).number_format = "hh:mm dd/mm/yyyy"
    for column, width in zip("ABCDEFG", (6, 28, 24, 30, 18, 14, 12), strict=True):
        sheet.column_dimensions[column].width = width
    for line in sheet.iter_rows(min_row=7):
        for cell in line:
            cell.alignment = Alignment(vertical="top", wrap_text=True)
    sheet.print_title_rows = "6:6"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth = 1
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _as_text(cells: Any) -> None:
    """Store the row's formula-like strings as text (openpyxl would write ``=...`` as a formula)."""
    for cell in cells:
        if isinstance(cell.value, str) and is_formula_like(cell.value):
            cell.data_type = "s"


def to_pdf(attendance: AttendanceList) -> bytes:
    """A printable A4 list with a signature column, in Vietnamese."""
    from fpdf import FPDF

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(0, 6, "ỦY BAN NHÂN DÂN", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 10, "DANH SÁCH THÀNH PHẦN THAM DỰ", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 11)
    pdf.multi_cell(0, 6, attendance.title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, f"{attendance.starts_at.astimezone(VIETNAM):%H:%M ngày %d/%m/%Y} — {attendance.venue}",
             align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, f"Có mặt: {attendance.present}/{len(attendance.rows)}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    widths = (10, 50, 38, 34, 58)
    pdf.set_font("DejaVu", "B", 9)
    with pdf.table(col_widths=widths, text_align=("CENTER", "LEFT", "LEFT", "CENTER", "LEFT"),
                   line_height=9, repeat_headings=1) as table:
        table.row(("STT", "Họ và tên", "Chức vụ", "Giờ đến", "Ký tên"))
        pdf.set_font("DejaVu", "", 9)
        for organisation, rows in attendance.groups:
            heading = table.row()
            heading.cell(organisation, colspan=5)
            for row in rows:
                table.row((str(row.number), row.name, row.position, row.arrival_text or row.note, ""))
    return bytes(pdf.output())


@dataclass(frozen=True)
class ExportFormat:
    """One file format of the attendance list: how to write it and how to serve it."""

    name: str
    write: Callable[[AttendanceList], bytes]
    mimetype: str


FORMATS: dict[str, ExportFormat] = {
    "xlsx": ExportFormat("xlsx", to_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "csv": ExportFormat("csv", to_csv, "text/csv; charset=utf-8"),
    "pdf": ExportFormat("pdf", to_pdf, "application/pdf"),
}
"""The formats offered, in the order the pages list them."""


@dataclass(frozen=True)
class ExportFile:
    """A written attendance list: its bytes, type and file name."""

    content: bytes
    mimetype: str
    filename: str


def export(meeting: Meeting, format_name: str) -> ExportFile:
    """Write ``meeting``'s attendance list in ``format_name`` (``xlsx``, ``csv`` or ``pdf``).

    Raises ``KeyError`` for another format (the routes only match these three).
    """
    chosen = FORMATS[format_name]
    content = chosen.write(build_attendance_list(meeting))
    return ExportFile(content, chosen.mimetype, f"danh-sach-tham-du-{meeting.id}.{chosen.name}")
