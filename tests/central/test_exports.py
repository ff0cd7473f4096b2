"""Attendance exports opened the way an office would: XLSX in openpyxl, CSV, and the PDF's text."""

from __future__ import annotations

import csv
import io
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest

from central.attendance.exports import build_attendance_list, to_csv, to_pdf, to_xlsx
from central.attendance.stats import meeting_statistics, range_statistics
from central.core.db import database, open_database
from central.gates.models import CheckIn, Gate
from central.invitations.models import Invitation, Organisation
from central.meetings.models import Meeting
from central.migrations import migrate
from central.registration.models import Delegate

START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội


@pytest.fixture
def meeting(database_url: str) -> Iterator[Meeting]:
    """A meeting with two organisations: Hoà arrives early, Đức late, Lan never comes, Bình was replaced."""
    open_database(database_url)
    migrate()
    with database.connection_context():
        meeting = Meeting.create(title="Họp giao ban UBND thành phố tháng 11", starts_at=START,
                                        ends_at=START + timedelta(hours=3), venue="Hội trường tầng 2",
                                        site_id="hq", created_at=START)
        gate = Gate.create(gate_id="lobby-1", site_id="hq", token_hash="x")
        people = {}
        for org_name, names in (("Sở Tư pháp", ["Nguyễn Thị Hoà", "Phạm Văn Bình"]),
                                ("Sở Xây dựng", ["Trần Văn Đức", "Lê Thị Lan"])):
            organisation = Organisation.create(name=org_name)
            invitation = Invitation.create(meeting=meeting, organisation=organisation,
                                                  number=f"{organisation.id}/TM-UBND", year=2026,
                                                  seq=organisation.id, secret_hash="x", created_at=START)
            for name in names:
                people[name] = Delegate.create(
                    invitation=invitation, meeting=meeting, name=name, position="Phó Giám đốc",
                    email=f"{uuid.uuid4().hex[:6]}@example.vn", code="x", credential=uuid.uuid4().hex,
                    valid_from=START, valid_until=START, created_at=START,
                )
        people["Phạm Văn Bình"].revoked_at = START
        people["Phạm Văn Bình"].save()
        for name, minutes in (("Nguyễn Thị Hoà", -20), ("Trần Văn Đức", 15)):
            CheckIn.create(checkin_id=uuid.uuid4(), gate=gate, meeting=meeting, delegate=people[name],
                                  allowed=True, reason="ok", outcome="entered", direction="in",
                                  scanned_at=START + timedelta(minutes=minutes), received_at=START)
        CheckIn.create(checkin_id=uuid.uuid4(), gate=gate, meeting=meeting, delegate=None, allowed=True,
                              reason="manual_open", outcome="entered", direction="in", manual=True,
                              scanned_at=START, received_at=START)
    database.connect(reuse_if_open=True)
    yield meeting
    database.close()


def test_list_groups_by_organisation_with_arrival_times(meeting):
    attendance = build_attendance_list(meeting)
    assert [org for org, _ in attendance.groups] == ["Sở Tư pháp", "Sở Xây dựng"]
    rows = {row.name: row for row in attendance.rows}
    assert set(rows) == {"Nguyễn Thị Hoà", "Trần Văn Đức", "Lê Thị Lan"}, "the replaced delegate is left out"
    assert rows["Nguyễn Thị Hoà"].arrival_text == "07:40 27/11/2026" and not rows["Nguyễn Thị Hoà"].late
    assert rows["Trần Văn Đức"].late and rows["Trần Văn Đức"].note == "Đến muộn"
    assert rows["Lê Thị Lan"].arrived_at is None and rows["Lê Thị Lan"].note == "Vắng"
    assert attendance.present == 2


def test_xlsx_opens_in_openpyxl(meeting):
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(build_attendance_list(meeting))))
    values = [list(row) for row in book.active.iter_rows(values_only=True)]
    assert values[0][0] == "DANH SÁCH THÀNH PHẦN THAM DỰ"
    assert values[5][:5] == ["STT", "Họ và tên", "Chức vụ", "Đơn vị", "Giờ đến"]
    names = [row[1] for row in values[6:] if row[1]]
    assert names == ["Nguyễn Thị Hoà", "Lê Thị Lan", "Trần Văn Đức"]
    hoa = next(row for row in values if row[1] == "Nguyễn Thị Hoà")
    assert hoa[4] == datetime(2026, 11, 27, 7, 40)


def test_csv_has_a_bom_and_every_delegate(meeting):
    data = to_csv(build_attendance_list(meeting))
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][1] == "Họ và tên"
    assert [(r[1], r[4], r[6]) for r in rows[1:]] == [
        ("Nguyễn Thị Hoà", "07:40 27/11/2026", ""),
        ("Lê Thị Lan", "", "Vắng"),
        ("Trần Văn Đức", "08:15 27/11/2026", "Đến muộn"),
    ]


def test_pdf_text_has_the_vietnamese_names(meeting, tmp_path: Path):
    path = tmp_path / "danh-sach.pdf"
    path.write_bytes(to_pdf(build_attendance_list(meeting)))
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    for expected in ("DANH SÁCH THÀNH PHẦN THAM DỰ", "Họp giao ban UBND thành phố tháng 11", "Nguyễn Thị Hoà",
                     "Trần Văn Đức", "Lê Thị Lan", "Sở Xây dựng", "Ký tên", "07:40 27/11/2026"):
        assert expected in text, expected


def test_statistics_per_meeting_and_over_a_range(meeting):
    stats = meeting_statistics(meeting)
    assert (stats.expected, stats.present, stats.late, stats.no_shows, stats.manual_entries) == (3, 2, 1, 1, 1)
    by_org = {s.organisation: s for s in stats.by_organisation}
    assert by_org["Sở Tư pháp"].rate == 1.0
    assert by_org["Sở Xây dựng"].rate == 0.5 and by_org["Sở Xây dựng"].no_shows == 1
    assert range_statistics(START - timedelta(days=1), START + timedelta(days=1)).present == 2
    assert range_statistics(START + timedelta(days=1), START + timedelta(days=2)).meetings == 0


FORMULA_LIKE = ['=HYPERLINK("http://evil.example/x","Bấm")', "=1+1", "+1+1", "-1+1", "@SUM(1+1)", "\t=1+1",
                "\r=1+1"]
"""One of each prefix a spreadsheet runs (OWASP's CSV injection rule: =, +, -, @, tab, CR)."""


def _sheet_xml(data: bytes) -> str:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read("xl/worksheets/sheet1.xml").decode("utf-8")


@pytest.mark.parametrize("value", FORMULA_LIKE)
def test_every_formula_prefix_stays_text_in_csv_and_xlsx(value: str) -> None:
    from central.attendance.exports import AttendanceList, AttendanceRow

    row = AttendanceRow(number=1, name=value, position=value, organisation=value, arrived_at=None, gate_id=value,
                        late=False)
    attendance = AttendanceList(meeting_id=1, title=value, starts_at=START, venue=value, groups=[(value, [row])])

    (header, line) = list(csv.reader(io.StringIO(to_csv(attendance).decode("utf-8-sig"), newline="")))
    assert header[1] == "Họ và tên"
    assert line[1:4] == ["'" + value] * 3 and line[5] == "'" + value, "a leading apostrophe: Excel shows text"

    data = to_xlsx(attendance)
    assert "<f>" not in _sheet_xml(data), "no cell is written as a formula"
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    texts = [cell for line in sheet.iter_rows() for cell in line
             if isinstance(cell.value, str) and cell.value.lstrip("\r\n\t") == value.lstrip("\r\n\t")]
    assert len(texts) == 6, "title, organisation heading, name, position, organisation, gate"
    assert {cell.data_type for cell in texts} == {"s"}


def _meeting_over(starts_at: datetime, ends_at: datetime, entries: dict[str, list[datetime]]) -> Meeting:
    """A meeting of Sở Nội vụ from ``starts_at`` to ``ends_at``; each named delegate enters at the given times."""
    with database.connection_context():
        meeting = Meeting.create(title="Kỳ họp thứ 12 HĐND thành phố", starts_at=starts_at, ends_at=ends_at,
                                 venue="Hội trường lớn", site_id="hq", created_at=starts_at)
        gate = Gate.create(gate_id="lobby-2", site_id="hq", token_hash="x")
        organisation = Organisation.create(name="Sở Nội vụ")
        invitation = Invitation.create(meeting=meeting, organisation=organisation, number="9/TM-UBND", year=2026,
                                       seq=9, secret_hash="x", created_at=starts_at)
        for name, times in entries.items():
            delegate = Delegate.create(invitation=invitation, meeting=meeting, name=name, position="Chuyên viên",
                                       email=f"{uuid.uuid4().hex[:6]}@example.vn", code="x",
                                       credential=uuid.uuid4().hex, valid_from=starts_at, valid_until=ends_at,
                                       created_at=starts_at)
            for at in times:
                CheckIn.create(checkin_id=uuid.uuid4(), gate=gate, meeting=meeting, delegate=delegate, allowed=True,
                               reason="ok", outcome="entered", direction="in", scanned_at=at, received_at=at)
    return meeting


def test_a_three_day_meeting_lists_each_day_in_csv_and_xlsx(meeting):
    # 08:00 on 27/11 to 17:00 on 29/11 in Hà Nội; An comes every day, Bảo on days 1 and 3, Cúc on day 2 only.
    day = timedelta(days=1)
    three_days = _meeting_over(START, START + 2 * day + timedelta(hours=9), {
        "Đỗ Văn An": [START - timedelta(minutes=5), START + timedelta(hours=4), START + day - timedelta(minutes=20),
                      START + 2 * day],
        "Hồ Thị Bảo": [START + timedelta(minutes=3), START + 2 * day + timedelta(hours=1)],
        "Vũ Thị Cúc": [START + day + timedelta(hours=19)],  # 03:00 on 29/11 in Hà Nội: still day 2
        "Mai Văn Dũng": [],
    })
    with database.connection_context():
        attendance = build_attendance_list(three_days)
        from central.attendance.services import meeting_attendance
        summary = meeting_attendance(three_days)
    assert [d["present"] for d in summary["days"]] == [2, 2, 2]
    assert [d["date"] for d in summary["days"]] == ["2026-11-27", "2026-11-28", "2026-11-29"]
    assert attendance.present_text == "Có mặt: 3/4 (ngày 1: 2, ngày 2: 2, ngày 3: 2)"

    rows = list(csv.reader(io.StringIO(to_csv(attendance).decode("utf-8-sig"))))
    assert rows[0] == ["STT", "Họ và tên", "Chức vụ", "Đơn vị", "Giờ đến", "Cổng",
                       "Ngày 1 (27/11)", "Ngày 2 (28/11)", "Ngày 3 (29/11)", "Ghi chú", "Nguồn", "Xung đột"]
    by_name = {row[1]: row for row in rows[1:]}
    assert by_name["Đỗ Văn An"][6:9] == ["07:55", "07:40", "08:00"]
    assert by_name["Hồ Thị Bảo"][6:9] == ["08:03", "", "09:00"]
    assert by_name["Vũ Thị Cúc"][6:9] == ["", "03:00", ""]
    assert by_name["Mai Văn Dũng"][6:10] == ["", "", "", "Vắng"]

    sheet = openpyxl.load_workbook(io.BytesIO(to_xlsx(attendance))).active
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[3][0] == "Có mặt: 3/4 (ngày 1: 2, ngày 2: 2, ngày 3: 2)"
    assert values[5][6:9] == ["Ngày 1 (27/11)", "Ngày 2 (28/11)", "Ngày 3 (29/11)"]
    an = next(row for row in values if row[1] == "Đỗ Văn An")
    assert an[6:9] == [datetime(2026, 11, 27, 7, 55), datetime(2026, 11, 28, 7, 40), datetime(2026, 11, 29, 8, 0)]

    pdf = subprocess.run(["pdftotext", "-layout", "-", "-"], input=to_pdf(attendance), capture_output=True,
                         check=True).stdout.decode("utf-8")
    assert "Có mặt: 3/4 (ngày 1: 2, ngày 2: 2, ngày 3: 2)" in pdf


def test_a_one_day_and_an_overnight_meeting_keep_one_arrival_column(meeting):
    # 23:00 on 27/11 to 02:50 on 28/11 in Hà Nội: one meeting day, so no per-day columns.
    night = START + timedelta(hours=15)
    overnight = _meeting_over(night, night + timedelta(hours=3, minutes=50), {
        "Đỗ Văn An": [night - timedelta(minutes=10), night + timedelta(hours=2)],
        "Hồ Thị Bảo": [night + timedelta(hours=2, minutes=30)],
    })
    with database.connection_context():
        for listed in (build_attendance_list(meeting), build_attendance_list(overnight)):
            assert len(listed.days) == 1 and listed.day_headers == []
            header = next(csv.reader(io.StringIO(to_csv(listed).decode("utf-8-sig"))))
            assert header == ["STT", "Họ và tên", "Chức vụ", "Đơn vị", "Giờ đến", "Cổng", "Ghi chú", "Nguồn",
                              "Xung đột"]
        from central.attendance.services import meeting_attendance
        summary = meeting_attendance(overnight)
    assert summary["days"] == [{"day": 1, "date": "2026-11-27", "present": 2}]
    assert {a["name"]: a["day_entries"] for a in summary["attendees"]} == {
        "Đỗ Văn An": [(night - timedelta(minutes=10)).isoformat()],
        "Hồ Thị Bảo": [(night + timedelta(hours=2, minutes=30)).isoformat()],
    }
