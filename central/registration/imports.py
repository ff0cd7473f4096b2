"""Bulk import of a list from an uploaded file (XLSX or CSV): the delegate list of an invitation here, the
office's organisations in :mod:`central.invitations.organisations`.

The file is read as text, never evaluated: a cell holding a formula (an XLSX formula, or a CSV cell starting
with ``=``) is refused, naming its row and cell, so nothing an import stores can run in a spreadsheet later.
Files over :data:`MAX_IMPORT_BYTES` or :data:`MAX_ROWS`, of another type (an XLSX is a zip; other bytes with
NUL in them are refused), or in an unknown encoding are refused as a whole. CSV text may be UTF-8, UTF-8 with a
byte-order mark, UTF-16 with one (Excel's "Unicode text") or Windows-1258 (Vietnamese Excel's "CSV"); the text
is normalised to NFC, since Windows-1258 writes tone marks as combining characters.

Every row then goes through the feature's one rule function (for delegates
:func:`central.registration.services.check_registrations`) without writing; the rows are written only when
all pass, in one transaction, so nothing is ever half-saved.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import unicodedata
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from central.core.audit import audit
from central.core.db import write_transaction
from central.core.errors import InvalidInputError, ServiceError
from central.invitations.models import Invitation
from central.registration import delegates as delegate_service
from central.registration import services
from central.registration.models import Delegate
from protocols.reasons import Reason

log = logging.getLogger(__name__)

MAX_IMPORT_BYTES = 48 * 1024
"""The largest file accepted (under the app's 64 KiB request limit); a few hundred rows fit."""
MAX_ROWS = 200
"""The most data rows a file may hold (the preview sends them back within the 64 KiB request limit)."""
MAX_UNZIPPED_BYTES = 8 * 1024 * 1024
"""An XLSX whose parts unpack to more than this is refused before it is read (a zip bomb)."""
MAX_CELL = 500
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_MESSAGE = "Ô chứa công thức; hãy nhập giá trị (văn bản), không dùng công thức"

DELEGATE_COLUMNS: dict[str, str] = {
    "name": "Họ và tên",
    "position": "Chức vụ",
    "email": "Email",
    "phone": "Số điện thoại",
}
"""The delegate list's columns: field → Vietnamese header (the template's, in this order)."""
DELEGATE_REQUIRED = ("name", "email")


class FileRefusedError(ServiceError):
    """The file as a whole cannot be read (too big, wrong type, unknown encoding, no header row)."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.MALFORMED, message)


@dataclass(frozen=True)
class Problem:
    """One error of an import: its spreadsheet row (1 is the header), its cell (``C5 (Email)``) if any."""

    row: int
    cell: str | None
    message: str

    def __str__(self) -> str:
        where = f"Dòng {self.row}" + (f", ô {self.cell}" if self.cell else "")
        return f"{where}: {self.message}"


def problem_order(problem: Problem) -> tuple[int, int, str]:
    """Sort key of problems: by row, then column (a row-wide problem last in its row)."""
    letters = re.match(r"[A-Z]+", problem.cell or "")
    column = letters.group(0) if letters else ""
    return problem.row, len(column) if column else 99, column


class RowsRefusedError(ServiceError):
    """One or more rows break a rule; ``problems`` names each row and cell. Nothing was saved."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(Reason.MALFORMED, "; ".join(str(p) for p in problems))


@dataclass
class Row:
    """One data row of a file: its spreadsheet row number and its cells by field name (text)."""

    number: int
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class Table:
    """The rows of a file, the columns (field → letter) and the problems of reading it (formula cells)."""

    rows: list[Row]
    letters: dict[str, str]
    problems: list[Problem]


def column_letter(index: int) -> str:
    """Return the spreadsheet letter of a column (0 → A, 26 → AA)."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def _key(header: str) -> str:
    return " ".join(unicodedata.normalize("NFC", header).split()).casefold()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return unicodedata.normalize("NFC", str(value)).strip()


def decode_text(data: bytes) -> str:
    """Return the text of a CSV file: UTF-8 with or without a byte-order mark, UTF-16 with one, else
    Windows-1258; always NFC. Raises :class:`FileRefusedError` when none of them reads it."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text": UTF-16 with its mark
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise FileRefusedError("Không đọc được tệp: mã hóa UTF-16 không hợp lệ") from exc
    elif data.startswith(b"\xef\xbb\xbf"):
        try:
            text = data[3:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileRefusedError("Không đọc được tệp: có dấu UTF-8 nhưng nội dung không phải UTF-8") from exc
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1258")
            except UnicodeDecodeError as exc:
                raise FileRefusedError("Không đọc được tệp: mã hóa không phải UTF-8 hay Windows-1258") from exc
    return unicodedata.normalize("NFC", text)


def _grid_from_csv(data: bytes) -> list[tuple[int, list[Any], set[int]]]:
    text = decode_text(data)
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    grid = []
    for number, cells in enumerate(csv.reader(io.StringIO(text, newline=""), dialect), start=1):
        formulas = {i for i, cell in enumerate(cells) if cell.lstrip().startswith("=")}
        grid.append((number, list(cells), formulas))
        if number > MAX_ROWS + 1:
            break
    return grid


def _grid_from_xlsx(data: bytes) -> list[tuple[int, list[Any], set[int]]]:
    import openpyxl

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNZIPPED_BYTES:
                raise FileRefusedError("Tệp quá lớn sau khi giải nén")
        # data_only=False: a formula cell gives its formula, never a computed (or cached) value.
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except FileRefusedError:
        raise
    except Exception as exc:  # openpyxl raises many kinds for a zip that is no workbook
        raise FileRefusedError("Tệp không phải bảng tính XLSX hợp lệ") from exc
    try:
        sheet = book.worksheets[0]
        grid = []
        for number, cells in enumerate(sheet.iter_rows(), start=1):
            values: list[Any] = []
            formulas: set[int] = set()
            for index, cell in enumerate(cells):
                value = getattr(cell, "value", None)
                if getattr(cell, "data_type", None) == "f" or (isinstance(value, str) and value.startswith("=")):
                    formulas.add(index)
                values.append(value)
            grid.append((number, values, formulas))
            if number > MAX_ROWS + 1:
                break
        return grid
    finally:
        book.close()


def read_table(data: bytes, columns: Mapping[str, str], required: Sequence[str]) -> Table:
    """Read an uploaded XLSX or CSV file into rows of text cells keyed by field (``columns``: field → header).

    Raises :class:`FileRefusedError` when the file cannot be read as a whole. Formula cells are not read: each is a
    :class:`Problem` of the returned table, naming its row and cell.
    """
    if not data:
        raise FileRefusedError("Tệp rỗng")
    if len(data) > MAX_IMPORT_BYTES:
        raise FileRefusedError(f"Tệp quá lớn (tối đa {MAX_IMPORT_BYTES // 1024} KB)")
    if data.startswith(b"PK\x03\x04"):
        grid = _grid_from_xlsx(data)
    elif b"\x00" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileRefusedError("Loại tệp không được hỗ trợ: chỉ nhận XLSX hoặc CSV")
    else:
        grid = _grid_from_csv(data)
    grid = [entry for entry in grid if any(_text(v) for v in entry[1])]
    if not grid:
        raise FileRefusedError("Tệp không có dòng tiêu đề")
    header_number, header, _formulas = grid[0]
    by_header = {_key(title): name for name, title in columns.items()}
    by_header.update({_key(name): name for name in columns})
    positions: dict[str, int] = {}
    for index, title in enumerate(header):
        name = by_header.get(_key(_text(title)))
        if name is not None and name not in positions:
            positions[name] = index
    missing = [columns[name] for name in required if name not in positions]
    if missing:
        raise FileRefusedError(f"Dòng {header_number} thiếu cột: {', '.join(missing)}")
    if len(grid) - 1 > MAX_ROWS:
        raise FileRefusedError(f"Tệp có quá nhiều dòng (tối đa {MAX_ROWS})")
    letters = {name: column_letter(index) for name, index in positions.items()}
    rows: list[Row] = []
    problems: list[Problem] = []
    for number, cells, formulas in grid[1:]:
        row = Row(number)
        for name, index in positions.items():
            cell = cells[index] if index < len(cells) else None
            if index in formulas:
                problems.append(Problem(number, f"{letters[name]}{number} ({columns[name]})", FORMULA_MESSAGE))
                row.values[name] = ""
                continue
            text = _text(cell)
            if len(text) > MAX_CELL:
                text = text[:MAX_CELL + 1]  # still too long for every field: the rules name it
            row.values[name] = text
        rows.append(row)
    if not rows:
        raise FileRefusedError("Tệp không có dòng dữ liệu nào")
    return Table(rows, letters, problems)


def problems_of(row: Row, exc: ServiceError, letters: Mapping[str, str], columns: Mapping[str, str]) -> list[Problem]:
    """Turn a rule's refusal of ``row`` into problems naming each cell (or the row, for a row-wide rule)."""
    if isinstance(exc, InvalidInputError):
        return [
            Problem(row.number, f"{letters[name]}{row.number} ({columns[name]})" if name in letters else None,
                    message)
            for name, message in exc.fields.items()
        ]
    return [Problem(row.number, None, exc.message)]


def rows_to_json(rows: Sequence[Row], columns: Mapping[str, str]) -> str:
    """The preview's rows as compact JSON (row number, then the cells in column order) for its save form."""
    return json.dumps([[row.number, *(row.values.get(name, "") for name in columns)] for row in rows],
                      ensure_ascii=False, separators=(",", ":"))


def rows_from_json(text: str | None, columns: Mapping[str, str]) -> list[Row]:
    """Read back what :func:`rows_to_json` wrote (from a form: checked, never trusted: the rules run again)."""
    try:
        items = json.loads(text or "")
    except ValueError:
        items = None
    if not isinstance(items, list) or not items or len(items) > MAX_ROWS:
        raise FileRefusedError("Không có dòng nào để lưu; hãy tải tệp lên lại")
    rows = []
    for item in items:
        if (not isinstance(item, list) or len(item) != len(columns) + 1 or not isinstance(item[0], int)
                or not all(isinstance(cell, str) for cell in item[1:])):
            raise FileRefusedError("Dữ liệu xem trước không hợp lệ; hãy tải tệp lên lại")
        rows.append(Row(item[0], dict(zip(columns, item[1:], strict=True))))
    return rows


def template_csv(columns: Mapping[str, str]) -> bytes:
    """The CSV template: the Vietnamese header row, UTF-8 with a byte-order mark (Excel reads it so)."""
    out = io.StringIO()
    csv.writer(out).writerow(list(columns.values()))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def template_xlsx(columns: Mapping[str, str], title: str) -> bytes:
    """The XLSX template: the Vietnamese header row in bold, every column formatted as text (phone numbers
    keep their leading zero)."""
    import openpyxl
    from openpyxl.styles import Font

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for index, header in enumerate(columns.values(), start=1):
        cell = sheet.cell(row=1, column=index, value=header)
        cell.font = Font(bold=True)
        column = sheet.column_dimensions[column_letter(index - 1)]
        column.width = 30
        column.number_format = "@"  # the column's style: cells typed in it are text
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- the delegate list ---------------------------------------------------------------------------------------


def check_delegate_file(invitation: Invitation, data: bytes, now: datetime) -> list[Row]:
    """Read a delegate list and apply the registration rules to every row, writing nothing.

    Returns the rows when all pass; raises :class:`FileRefusedError` (the file) or :class:`RowsRefusedError` (every bad
    row and cell), or the rules' ``ConflictError`` when the registration is closed.
    """
    table = read_table(data, DELEGATE_COLUMNS, DELEGATE_REQUIRED)
    check_delegate_rows(invitation, table.rows, now, letters=table.letters, problems=table.problems)
    return table.rows


def check_delegate_rows(
    invitation: Invitation,
    rows: Sequence[Row],
    now: datetime,
    *,
    letters: Mapping[str, str] | None = None,
    problems: Sequence[Problem] = (),
) -> list[services.RowCheck]:
    """Apply the registration rules to rows; return their accepted verdicts (clean fields, pending the office's
    approval or not) or raise :class:`RowsRefusedError`."""
    letters = letters or {name: column_letter(i) for i, name in enumerate(DELEGATE_COLUMNS)}
    found = list(problems)
    checks = services.check_registrations(invitation, [row.values for row in rows], now)
    for row, check in zip(rows, checks, strict=True):
        if check.error is not None:
            found.extend(problems_of(row, check.error, letters, DELEGATE_COLUMNS))
    if found:
        found.sort(key=problem_order)
        raise RowsRefusedError(found)
    return [check for check in checks if check.clean is not None]


def import_delegates(
    invitation: Invitation, rows: Sequence[Row], now: datetime, deps: services.Deps
) -> list[Delegate]:
    """Register every row as a delegate (codes issued, no e-mail yet: "Gửi Mail" sends them; or pending the
    office's approval when the meeting asks for it), all or none.

    The rules are checked again inside the one write transaction, so a list that became invalid since its
    preview (the limit reached, the deadline passed) saves nothing.
    """
    with write_transaction():
        checks = check_delegate_rows(invitation, rows, now)
        saved = [services.register_checked(invitation, check, now, deps) for check in checks]
        audit(delegate_service.registrar_of(invitation), "delegate.import", f"invitation:{invitation.id}",
              {"invitation": invitation.number, "count": len(saved)}, now=now)
    log.info("delegates imported invitation=%s count=%d", invitation.id, len(saved))
    return saved
