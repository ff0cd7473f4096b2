"""The attendance list and statistics as an organiser or a leader reaches them: links on the meeting page and
the live dashboard, the files themselves (XLSX in openpyxl, CSV, the PDF's text), the statistics pages, the
command line, and who may not have them."""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from flask.testing import FlaskClient

from central.core.db import database
from central.gates.checkins import store_checkin

from .conftest import START, Api
from .staff import login, make_users
from .test_attendance import checkin

FORMULA = '=HYPERLINK("http://evil.example/x","Bấm")'


@pytest.fixture
def meeting(api: Api, clock: Any) -> dict[str, Any]:
    """A meeting with two delegates of one organisation: An arrives 5 minutes late, the other never comes
    (their name is a spreadsheet formula, as an attacker would type it on the registration page)."""
    make_users(clock())
    meeting = api.meeting(title="Họp giao ban tháng 3")
    invitation = api.invitation(meeting_id=meeting["id"])
    an = api.register(invitation).get_json()["id"]
    response = api.register(invitation, name=FORMULA, email="x@example.vn")
    assert response.status_code == 201, response.get_json()
    api.gate("g1")
    with database.connection_context():
        # Received a second after it happened: central never stores an arrival later than it received it.
        received = START + timedelta(minutes=5, seconds=1)
        assert store_checkin(checkin(an, meeting["id"], 5), "g1", received).status == "stored"
    return meeting


def _links(html: str, meeting_id: int) -> set[str]:
    return {f"/meetings/{meeting_id}/danh-sach-tham-du.{f}" for f in ("xlsx", "csv", "pdf") if
            f'href="/meetings/{meeting_id}/danh-sach-tham-du.{f}"' in html}


@pytest.mark.parametrize("username", ["chuyenvien", "lanhdao"])
def test_the_meeting_page_and_the_dashboard_link_to_the_list(
    client: FlaskClient, meeting: dict[str, Any], username: str
) -> None:
    login(client, username)
    number = meeting["id"]
    everything = {f"/meetings/{number}/danh-sach-tham-du.{f}" for f in ("xlsx", "csv", "pdf")}
    page = client.get(f"/meetings/{number}").text
    assert _links(page, number) == everything
    assert f'href="/meetings/{number}/thong-ke"' in page
    dashboard = client.get(f"/meetings/{number}/truc-tiep").text
    assert _links(dashboard, number) == everything
    assert 'href="/meetings/thong-ke"' in page, "the menu leads to the statistics"


def test_the_xlsx_is_the_list_with_formulas_kept_as_text(client: FlaskClient, meeting: dict[str, Any]) -> None:
    login(client, "lanhdao")
    response = client.get(f"/meetings/{meeting['id']}/danh-sach-tham-du.xlsx")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["Content-Disposition"] == f'attachment; filename="danh-sach-tham-du-{meeting["id"]}.xlsx"'
    assert response.headers["Cache-Control"] == "no-store"
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).active
    rows = [row for row in sheet.iter_rows(values_only=True) if row and isinstance(row[0], int)]
    assert {row[1]: row[6] for row in rows} == {"Nguyễn Văn An": "Đến muộn", FORMULA: "Vắng"}
    cells = [cell for line in sheet.iter_rows() for cell in line if cell.value == FORMULA]
    assert [cell.data_type for cell in cells] == ["s"], "stored as text, never as a formula"


def test_the_csv_opens_in_excel_and_runs_no_formula(client: FlaskClient, meeting: dict[str, Any]) -> None:
    login(client, "chuyenvien")
    response = client.get(f"/meetings/{meeting['id']}/danh-sach-tham-du.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0][:2] == ["STT", "Họ và tên"]
    assert sorted(row[1] for row in rows[1:]) == ["'" + FORMULA, "Nguyễn Văn An"]


def test_the_pdf_is_the_printable_list(client: FlaskClient, meeting: dict[str, Any], tmp_path: Path) -> None:
    login(client, "chuyenvien")
    response = client.get(f"/meetings/{meeting['id']}/danh-sach-tham-du.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    path = tmp_path / "list.pdf"
    path.write_bytes(response.data)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout
    assert "DANH SÁCH THÀNH PHẦN THAM DỰ" in text
    assert "Họp giao ban tháng 3" in text and "Nguyễn Văn An" in text and "Có mặt: 1/2" in text


def test_meeting_statistics_page_with_its_chart(client: FlaskClient, meeting: dict[str, Any]) -> None:
    login(client, "lanhdao")
    page = client.get(f"/meetings/{meeting['id']}/thong-ke").text
    assert 'data-total="expected">2<' in page and 'data-total="present">1 (50.0%)<' in page
    assert 'data-total="late">1<' in page and 'data-total="absent">1<' in page
    assert '<svg class="chart"' in page and 'data-organisation="Sở Tài chính"' in page
    assert 'width="160.0"' in page, "the bar is half of its 320 px track"


def test_range_statistics_count_the_meetings_of_the_days(client: FlaskClient, meeting: dict[str, Any]) -> None:
    login(client, "chuyenvien")
    page = client.get("/meetings/thong-ke?tu=2025-03-01&den=2025-03-31")
    assert page.status_code == 200
    assert 'data-total="meetings">1<' in page.text and 'data-total="present">1 (50.0%)<' in page.text
    assert f'href="/meetings/{meeting["id"]}/thong-ke"' in page.text
    assert _links(page.text, meeting["id"]) == {
        f"/meetings/{meeting['id']}/danh-sach-tham-du.{f}" for f in ("xlsx", "csv", "pdf")
    }
    before = client.get("/meetings/thong-ke?tu=2025-02-01&den=2025-02-28").text
    assert 'data-total="meetings">0<' in before and "Không có cuộc họp nào trong khoảng này." in before


@pytest.mark.parametrize(("query", "field", "message"), [
    ("tu=2025-13-01", "tu", "Ngày không có thật"),
    ("tu=01/03/2025", "tu", "Ngày phải có dạng YYYY-MM-DD"),
    ("tu=2025-03-10&den=2025-03-01", "den", "Ngày kết thúc phải không trước ngày bắt đầu"),
    ("tu=2020-01-01&den=2025-01-01", "den", "Khoảng thời gian dài nhất là 366 ngày"),
    ("tu=" + "9" * 5000, "tu", "Ngày phải có dạng YYYY-MM-DD"),
])
def test_a_bad_range_is_refused_with_its_reason(
    client: FlaskClient, meeting: dict[str, Any], query: str, field: str, message: str
) -> None:
    login(client, "chuyenvien")
    response = client.get(f"/meetings/thong-ke?{query}")
    assert response.status_code == 400
    assert f'<p class="error" id="{field}-error">{message}</p>' in response.text
    assert 'data-total="meetings"' not in response.text


@pytest.mark.parametrize("url", [
    "/meetings/{id}/danh-sach-tham-du.xlsx", "/meetings/{id}/danh-sach-tham-du.csv",
    "/meetings/{id}/danh-sach-tham-du.pdf", "/meetings/{id}/thong-ke", "/meetings/thong-ke",
])
def test_only_organisers_and_leaders_get_the_list(client: FlaskClient, meeting: dict[str, Any], url: str) -> None:
    target = url.format(id=meeting["id"])
    anonymous = client.get(target)
    assert anonymous.status_code in (302, 401) and b"Nguy" not in anonymous.data
    login(client, "baove")
    assert client.get(target).status_code == 403


def test_an_unknown_meeting_or_format_is_not_found(client: FlaskClient, meeting: dict[str, Any]) -> None:
    login(client, "chuyenvien")
    assert client.get("/meetings/999999/danh-sach-tham-du.xlsx").status_code == 404
    assert client.get("/meetings/999999/thong-ke").status_code == 404
    assert client.get(f"/meetings/{meeting['id']}/danh-sach-tham-du.exe").status_code == 404


def test_export_from_the_shell(
    meeting: dict[str, Any], central_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from central.cli import main

    monkeypatch.setenv("VAORA_DATABASE_URL", str(central_config["VAORA_DATABASE_URL"]))
    target = tmp_path / "ds.xlsx"
    assert main(["export", "--meeting", str(meeting["id"]), "--format", "xlsx", "-o", str(target)]) == 0
    sheet = openpyxl.load_workbook(target).active
    assert "Nguyễn Văn An" in [cell for row in sheet.iter_rows(values_only=True) for cell in row]
    assert main(["export", "--meeting", str(meeting["id"]), "--format", "csv", "-o", "-"]) == 0
    assert "Nguyễn Văn An" in capsys.readouterr().out
    assert main(["export", "--meeting", "999999", "-o", str(tmp_path / "none.xlsx")]) == 2
    assert "Không tìm thấy cuộc họp" in capsys.readouterr().err
    assert not (tmp_path / "none.xlsx").exists()
    assert main(["export", "--meeting", str(meeting["id"]), "-o", str(tmp_path / "missing" / "x.xlsx")]) == 2


HOSTILE = [FORMULA, "=1+1", "+1+1", "-1+1", "@SUM(1+1)"]
"""What anyone holding a registration link can type as a name or position (tab and CR are stripped by the
form's validation; tests/central/test_exports.py covers them in the files themselves)."""


def test_names_and_positions_from_the_registration_link_stay_text_on_every_export_path(
    client: FlaskClient, api: Api, meeting: dict[str, Any], central_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    import zipfile

    from central.cli import main

    invitation = api.invitation(meeting["id"], api.organisation("Sở Nội vụ")["id"])
    for n, value in enumerate(HOSTILE):
        response = api.register(invitation, name=value, position=value, email=f"dai-bieu-{n}@example.vn")
        assert response.status_code == 201, response.get_json()
    login(client, "chuyenvien")
    monkeypatch.setenv("VAORA_DATABASE_URL", str(central_config["VAORA_DATABASE_URL"]))
    assert main(["export", "--meeting", str(meeting["id"]), "--format", "xlsx", "-o", str(tmp_path / "ds.xlsx")]) == 0
    assert main(["export", "--meeting", str(meeting["id"]), "--format", "csv", "-o", str(tmp_path / "ds.csv")]) == 0
    capsys.readouterr()
    workbooks = [client.get(f"/meetings/{meeting['id']}/danh-sach-tham-du.xlsx").data,
                 (tmp_path / "ds.xlsx").read_bytes()]
    tables = [client.get(f"/meetings/{meeting['id']}/danh-sach-tham-du.csv").data, (tmp_path / "ds.csv").read_bytes()]

    for data in workbooks:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert "<f>" not in archive.read("xl/worksheets/sheet1.xml").decode("utf-8"), "no formula in the file"
        sheet = openpyxl.load_workbook(io.BytesIO(data)).active
        cells = [cell for line in sheet.iter_rows() for cell in line if cell.value in HOSTILE]
        # The formula-named delegate of the fixture, and each of these as name and as position.
        assert sorted(str(cell.value) for cell in cells) == sorted([FORMULA] + HOSTILE * 2)
        assert {cell.data_type for cell in cells} == {"s"}
    for data in tables:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
        hostile = [row for row in rows[1:] if row[3] == "Sở Nội vụ"]
        assert sorted((row[1], row[2]) for row in hostile) == sorted(("'" + v, "'" + v) for v in HOSTILE)
