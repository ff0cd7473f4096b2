"""The attendance list of a meeting, grouped by organisation with arrival times, as CSV, XLSX and PDF.

The PDF is laid out to be printed and signed: one row per delegate with a signature column, organisations
in alphabetical order, times in Vietnam time (UTC+7), and Vietnamese text in an embedded DejaVu font.
A meeting spanning several meeting days (:mod:`protocols.meeting_days`: 04:00 to 04:00 local, an overnight
meeting is one day) gets one column per day ("Ngày 1 (08/06)", ...) with that day's first arrival time, and
the count of those present each day in the heading.
The last column, "Xung đột", says why central flagged a person's entries (:mod:`central.gates.conflicts`): a
replaced delegate whose old code was still admitted is listed too, with the conflict, and "present" counts their
seat once (:func:`central.attendance.services.seats`).
Text that a spreadsheet would run as a formula (a name typed as ``=HYPERLINK(...)``) stays text: CSV cells
get a leading apostrophe, XLSX cells are stored as strings. :func:`export` is the one entry for the pages
and the command line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from central.attendance.services import meeting_attendance
from central.core.states import ConflictReason
from central.meetings.models import Meeting
from protocols.meeting_days import MEETING_TZ, day_dates

VIETNAM = MEETING_TZ
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
HEADERS = ("STT", "Họ và tên", "Chức vụ", "Đơn vị", "Giờ đến", "Cổng", "Ghi chú", "Nguồn")
SOURCE_REGISTRATION = "Đơn vị đăng ký"
SOURCE_DESK = "Bàn tiếp đón"
WALKIN_GROUP = "Khách đăng ký tại bàn tiếp đón (không thuộc danh sách đơn vị cử)"
"""The heading of the walk-ins' group: listed apart, after every organisation, with the desk as their source."""
CONFLICT_HEADER = "Xung đột"
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
    day_entries: tuple[datetime | None, ...] = ()
    """Per meeting day, the first arrival that day (None when absent that day)."""
    source: str = SOURCE_REGISTRATION
    """Who put the person on the list: the organisation (registration) or the guard desk (a walk-in)."""
    seat: int = 0
    """The seat the delegate fills (:func:`central.attendance.services.seats`): present counts each seat once."""
    revoked: bool = False
    """Their code was revoked (replaced): listed only because they entered, and not expected."""
    conflict: str = ""
    """Why central flagged their entries, in Vietnamese ("" when it did not)."""

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
    days: tuple[date, ...] = ()
    """The local date each meeting day begins; one per day."""

    @property
    def multi_day(self) -> bool:
        """True when the meeting spans more than one meeting day (the list then has a column per day)."""
        return len(self.days) > 1

    @property
    def day_headers(self) -> list[str]:
        """The per-day column headings ("Ngày 1 (08/06)", ...), none for a one-day meeting."""
        return [f"Ngày {n} ({d:%d/%m})" for n, d in enumerate(self.days, start=1)] if self.multi_day else []

    @property
    def headers(self) -> list[str]:
        """The columns of the CSV and XLSX lists."""
        return [*HEADERS[:-2], *self.day_headers, *HEADERS[-2:], CONFLICT_HEADER]

    def present_on(self, day: int) -> int:
        """How many seats were filled on meeting day ``day`` (1-based)."""
        return len({row.seat for row in self.rows
                    if len(row.day_entries) >= day and row.day_entries[day - 1] is not None})

    @property
    def present_text(self) -> str:
        """"Có mặt: 12/20", with each day's count for a multi-day meeting."""
        text = f"Có mặt: {self.present}/{self.expected}"
        if self.multi_day:
            text += " (" + ", ".join(f"ngày {n}: {self.present_on(n)}" for n in range(1, len(self.days) + 1)) + ")"
        return text

    @property
    def rows(self) -> list[AttendanceRow]:
        """Every row, in list order."""
        return [row for _, rows in self.groups for row in rows]

    @property
    def present(self) -> int:
        """How many seats were filled: a delegate once, a replaced delegate and their replacement once."""
        return len({row.seat for row in self.rows if row.arrived_at is not None})

    @property
    def expected(self) -> int:
        """How many delegates were expected (codes not revoked)."""
        return sum(1 for row in self.rows if not row.revoked)


def build_attendance_list(meeting: Meeting) -> AttendanceList:
    """Collect the list from central's database. A delegate whose code was revoked (replaced) is left out unless
    they entered anyway: then they are listed with the conflict that says why.

    The organisations' delegates come grouped by organisation; walk-ins registered at the guard desk follow, apart,
    in their own group with the desk as their source (they are not delegates of the organisation they came with).
    """
    data = meeting_attendance(meeting)
    replaced_by = {c["delegate_id"]: c["replaced_by"] for c in data["conflicts"] if c["replaced_by"]}
    people = [p for p in data["attendees"] if p["present"] or not p["revoked"]]
    people.sort(key=lambda p: bool(p.get("walkin")))  # stable: organisations first, then the desk's walk-ins
    groups: dict[str, list[AttendanceRow]] = {}
    for number, person in enumerate(people, start=1):
        walkin = bool(person.get("walkin"))
        arrived = datetime.fromisoformat(person["first_entry_at"]) if person["first_entry_at"] else None
        groups.setdefault(WALKIN_GROUP if walkin else person["organisation"], []).append(
            AttendanceRow(
                number=number,
                name=person["name"],
                position=person["position"] or "",
                organisation=person["organisation"],
                arrived_at=arrived,
                gate_id=person["gate_id"],
                late=arrived is not None and arrived > meeting.starts_at,
                day_entries=tuple(datetime.fromisoformat(at) if at else None for at in person["day_entries"]),
                source=SOURCE_DESK if walkin else SOURCE_REGISTRATION,
                seat=person["seat"],
                revoked=person["revoked"],
                conflict=conflict_text(person["conflicts"], replaced_by.get(person["delegate_id"])),
            )
        )
    return AttendanceList(
        meeting_id=meeting.id,
        title=meeting.title,
        starts_at=meeting.starts_at,
        venue=meeting.venue,
        groups=list(groups.items()),
        days=tuple(day_dates(meeting.starts_at, meeting.ends_at)),
    )


def conflict_text(reasons: list[str], replaced_by: str | None = None) -> str:
    """The "Xung đột" cell: each reason's Vietnamese label, the replacement's name after a replaced code."""
    texts = []
    for reason in reasons:
        member = ConflictReason(reason)
        text = member.vi
        if member is ConflictReason.REPLACED_CODE and replaced_by:
            text += f" (thay bằng {replaced_by})"
        texts.append(text)
    return "; ".join(texts)


def _day_times(attendance: AttendanceList, row: AttendanceRow) -> list[datetime | None]:
    """The row's per-day arrival times in Vietnam time (naive, for a spreadsheet), for a multi-day list."""
    if not attendance.multi_day:
        return []
    return [at.astimezone(VIETNAM).replace(tzinfo=None) if at else None for at in row.day_entries]


def to_csv(attendance: AttendanceList) -> bytes:
    """CSV in UTF-8 with a byte-order mark, so Excel opens the Vietnamese text correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(attendance.headers)
    for row in attendance.rows:
        days = [f"{at:%H:%M}" if at else "" for at in _day_times(attendance, row)]
        writer.writerow([csv_cell(value) for value in (
            row.number, row.name, row.position, row.organisation, row.arrival_text, row.gate_id or "", *days,
            row.note, row.source, row.conflict
        )])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(attendance: AttendanceList) -> bytes:
    """An XLSX workbook: a title block, then each organisation's heading and its delegates."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)  # a new workbook's one sheet
    sheet.title = "Danh sách tham dự"
    sheet.append(["DANH SÁCH THÀNH PHẦN THAM DỰ"])
    sheet.append([attendance.title])
    _as_text(sheet[2])
    sheet.append([f"{attendance.starts_at.astimezone(VIETNAM):%H:%M %d/%m/%Y} — {attendance.venue}"])
    sheet.append([attendance.present_text])
    sheet.append([])
    sheet.append(attendance.headers)
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
                 row.gate_id or "", *_day_times(attendance, row), row.note, row.source, row.conflict]
            )
            _as_text(sheet[sheet.max_row])
            sheet.cell(row=sheet.max_row, column=5).number_format = "hh:mm dd/mm/yyyy"
            for offset in range(len(attendance.day_headers)):
                sheet.cell(row=sheet.max_row, column=7 + offset).number_format = "hh:mm"
    widths = (6, 28, 24, 30, 18, 14, *(10 for _ in attendance.day_headers), 12, 16, 30)
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
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
    pdf.cell(0, 6, attendance.present_text, align="C", new_x="LMARGIN", new_y="NEXT")
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
                position = row.position if row.source == SOURCE_REGISTRATION else f"{row.organisation} ({SOURCE_DESK})"
                arrival = row.arrival_text or row.note
                table.row((str(row.number), row.name, position,
                           f"{arrival}\n{CONFLICT_HEADER}: {row.conflict}" if row.conflict else arrival, ""))
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
