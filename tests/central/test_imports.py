"""Bulk import of delegate lists and organisation lists (XLSX, CSV), and the registration rules on every path.

Each registration rule (delegate limit, deadline, duplicate e-mail, meeting state, the office's approval) is run
through each path: the registration page, the JSON API and the file import; all refuse and save nothing, or, for
a meeting whose registrations the office approves, store the delegate pending: no code, no mail, nothing for the
gates. Bad files (too big, wrong type, Windows-1258, UTF-8 with a byte-order mark, a formula in a cell, one bad
row) are refused or read as text, with the row and cell named, and nothing is half-saved.
"""

from __future__ import annotations

import html
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import openpyxl
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from central.core.db import database
from central.core.models import AuditEntry, Change
from central.invitations.models import Organisation
from central.outbound.jobs import MailJob
from central.registration.models import Delegate
from devtools.mailcatcher import MailCatcher

from .conftest import API_TOKEN, START, Api, Clock
from .staff import login as staff_login
from .staff import make_users, page_token

HEADERS = ["Họ và tên", "Chức vụ", "Email", "Số điện thoại"]
AN = ["Nguyễn Văn An", "Phó Giám đốc", "an.nguyen@example.vn", "0912345678"]
BINH = ["Trần Thị Bình", "Chuyên viên", "binh.tran@example.vn", ""]
CUONG = ["Lê Văn Cường", "Trưởng phòng", "cuong.le@example.vn", "0987654321"]


@pytest.fixture
def central_config(central_config: dict[str, Any]) -> dict[str, Any]:
    """The suite's config with the mail queue on and no worker thread: "Gửi Mail" only queues."""
    return {**central_config, "VAORA_MAIL_QUEUE": "1", "VAORA_MAIL_WORKER": "0"}


def make_invitation(api: Api, *, limit: int | None = None, deadline: Any = None,
                    approval: bool = False) -> dict[str, Any]:
    """An approved invitation (with its secret, as received) for a new meeting and organisation; ``approval``: the
    meeting asks the office to approve each registration."""
    extra: dict[str, Any] = {"registration_deadline": deadline.isoformat()} if deadline is not None else {}
    if approval:
        extra["registration_approval"] = True
    meeting = api.meeting(**extra)
    organisation = api.organisation()
    body: dict[str, Any] = {"meeting_id": meeting["id"], "organisation_id": organisation["id"]}
    if limit is not None:
        body["delegate_limit"] = limit
    draft = api.post("/api/v1/invitations", body)
    assert draft.status_code == 201, draft.get_json()
    approved = api.approve(draft.get_json()["id"])
    assert approved.status_code == 200, approved.get_json()
    number = approved.get_json()["number"]
    return {**approved.get_json(), "secret": api.received_link(number).secret}


def url(invitation: dict[str, Any], suffix: str = "") -> str:
    number = quote(invitation["number"], safe="/")
    return f"/dang-ky/{number}{suffix}?s={quote(invitation['secret'], safe='')}"


def token(client: FlaskClient, page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(page).get_data(as_text=True))
    assert match, page
    return match.group(1)


def csv_bytes(rows: list[list[str]], *, header: list[str] = HEADERS, encoding: str = "utf-8") -> bytes:
    lines = [",".join(header)] + [",".join(row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(rows: list[list[Any]], *, header: list[str] = HEADERS) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def cp1258(text: str) -> bytes:
    """Vietnamese as Windows-1258 writes it: base letters precomposed, tone marks as combining characters."""
    out = b""
    for char in text:
        try:
            out += char.encode("cp1258")
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFD", char)
            for index in range(1, len(decomposed)):  # the tone mark apart, the rest precomposed
                rest = unicodedata.normalize("NFC", decomposed[:index] + decomposed[index + 1:])
                try:
                    out += rest.encode("cp1258") + decomposed[index].encode("cp1258")
                    break
                except UnicodeEncodeError:
                    continue
            else:
                raise
    return out


def upload(client: FlaskClient, invitation: dict[str, Any], data: bytes, filename: str = "ds.csv",
           csrf: str | None = None) -> Any:
    return client.post(url(invitation, "/nhap"), data={
        "csrf_token": csrf or token(client, url(invitation, "/nhap")), "tep": (io.BytesIO(data), filename),
    }, content_type="multipart/form-data")


def save_preview(client: FlaskClient, invitation: dict[str, Any], preview_html: str) -> Any:
    """Submit the preview's form as the browser would (its hidden fields)."""
    form = preview_html[preview_html.index('id="import-preview"'):]
    fields: list[tuple[str, str]] = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    return client.post(url(invitation, "/nhap/luu"), data=MultiDict([(k, html.unescape(v)) for k, v in fields]),
                       content_type="multipart/form-data")


def import_file(client: FlaskClient, invitation: dict[str, Any], data: bytes, filename: str = "ds.csv",
                csrf: str | None = None) -> Any:
    """Upload, and when the preview is shown, save it; return the last response."""
    preview = upload(client, invitation, data, filename, csrf)
    if preview.status_code != 200:
        return preview
    return save_preview(client, invitation, preview.get_data(as_text=True))


def snapshot() -> tuple[list[tuple[Any, ...]], int, int]:
    """Delegates, change log and queued delegate mails: what a refused import must leave alone."""
    from central.invitations.deliveries import KINDS

    with database.connection_context():
        rows = [(d.id, d.name, d.email, d.revoked_at) for d in Delegate.select().order_by(Delegate.id)]
        return rows, Change.select().count(), MailJob.select().where(MailJob.kind.not_in(KINDS)).count()


def names() -> list[str]:
    with database.connection_context():
        return [d.name for d in Delegate.select().where(Delegate.revoked_at.is_null()).order_by(Delegate.id)]


def problems(response: Any) -> list[str]:
    body = response.get_data(as_text=True)
    cells = re.findall(r'<tr class="problem"><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>', body)
    return [" | ".join(html.unescape(c) for c in cell) for cell in cells]


# --- one rule, every path -------------------------------------------------------------------------------------


# Each path takes the CSRF token read while the page still had its forms (a closed page has none).
def via_page(client: FlaskClient, api: Api, invitation: dict, person: list[str], csrf: str) -> tuple[int, str]:
    data = dict(zip(["name", "position", "email", "phone"], person, strict=True))
    response = client.post(url(invitation, "/dai-bieu"), data={**data, "csrf_token": csrf})
    return response.status_code, response.get_data(as_text=True)


def via_api(client: FlaskClient, api: Api, invitation: dict, person: list[str], csrf: str) -> tuple[int, str]:
    data = dict(zip(["name", "position", "email", "phone"], person, strict=True))
    response = api.register(invitation, **{k: v for k, v in data.items() if v})
    return response.status_code, response.get_data(as_text=True)


def via_import(client: FlaskClient, api: Api, invitation: dict, person: list[str], csrf: str) -> tuple[int, str]:
    response = import_file(client, invitation, csv_bytes([person]), csrf=csrf)
    return response.status_code, response.get_data(as_text=True)


PATHS: dict[str, Callable[..., tuple[int, str]]] = {"page": via_page, "api": via_api, "import": via_import}


@pytest.mark.parametrize("approval", [False, True], ids=["no-approval", "approval"])
@pytest.mark.parametrize("path", PATHS)
def test_the_delegate_limit_holds_on_every_path(client: FlaskClient, api: Api, path: str, approval: bool) -> None:
    """A delegate awaiting the office's approval holds their place as one with a code does."""
    invitation = make_invitation(api, limit=1, approval=approval)
    csrf = token(client, url(invitation, "/nhap"))
    assert api.register(invitation, name=AN[0], email=AN[2]).status_code == 201
    before = snapshot()
    status, body = PATHS[path](client, api, invitation, csrf=csrf, person=BINH)
    assert status == 409 if path != "import" else status == 400
    assert "tối đa 1 đại biểu" in body
    assert snapshot() == before


@pytest.mark.parametrize("path", PATHS)
def test_the_deadline_holds_on_every_path(client: FlaskClient, api: Api, clock: Clock, path: str) -> None:
    invitation = make_invitation(api, deadline=START - timedelta(days=1))
    csrf = token(client, url(invitation, "/nhap"))
    clock.now = START - timedelta(hours=12)
    before = snapshot()
    status, body = PATHS[path](client, api, invitation, csrf=csrf, person=AN)
    assert status == 409
    assert "hết hạn đăng ký" in body
    assert snapshot() == before


@pytest.mark.parametrize("path", PATHS)
def test_a_duplicate_email_is_refused_on_every_path(client: FlaskClient, api: Api, path: str) -> None:
    invitation = make_invitation(api)
    csrf = token(client, url(invitation, "/nhap"))
    assert api.register(invitation, name=AN[0], email=AN[2]).status_code == 201
    before = snapshot()
    status, body = PATHS[path](client, api, invitation, csrf=csrf, person=[BINH[0], "", AN[2].upper(), ""])
    assert status == (409 if path == "api" else 400)
    assert "Email này đã được dùng" in body
    assert snapshot() == before


@pytest.mark.parametrize("path", PATHS)
def test_a_cancelled_meeting_takes_no_delegate_on_any_path(client: FlaskClient, api: Api, path: str) -> None:
    invitation = make_invitation(api)
    csrf = token(client, url(invitation, "/nhap"))
    cancelled = client.post(f"/api/v1/meetings/{invitation['meeting_id']}/status", json={"status": "cancelled"},
                            headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert cancelled.status_code == 200, cancelled.get_json()
    before = snapshot()
    status, body = PATHS[path](client, api, invitation, csrf=csrf, person=AN)
    assert status in (404, 409)
    if status == 409:
        assert "hủy" in body
    assert snapshot() == before


@pytest.mark.parametrize("path", PATHS)
def test_a_good_delegate_is_registered_on_every_path(client: FlaskClient, api: Api, path: str) -> None:
    invitation = make_invitation(api, limit=2)
    csrf = token(client, url(invitation, "/nhap"))
    status, _body = PATHS[path](client, api, invitation, csrf=csrf, person=AN)
    assert status in (201, 302)
    assert names() == [AN[0]]


@pytest.mark.parametrize("path", PATHS)
def test_the_offices_approval_holds_on_every_path(client: FlaskClient, api: Api, path: str) -> None:
    """With the office's approval on, each path stores the delegate pending: no code, no code mail queued, no change
    for the gates; the organisation's page says so and "Gửi Mail" has nothing to send."""
    invitation = make_invitation(api, limit=2, approval=True)
    csrf = token(client, url(invitation, "/nhap"))
    _rows, changes, mails = snapshot()
    status, _body = PATHS[path](client, api, invitation, csrf=csrf, person=AN)
    assert status in (201, 302)
    assert names() == [AN[0]]
    with database.connection_context():
        delegate = Delegate.get(Delegate.name == AN[0])
        assert (delegate.approval, delegate.code, delegate.code_hash) == ("pending", "", None)
    _after, after_changes, after_mails = snapshot()
    assert (after_changes, after_mails) == (changes, mails), "nothing for the gates, no mail"
    page = client.get(url(invitation)).get_data(as_text=True)
    assert "Chờ văn phòng duyệt" in page and re.search(r'id="send-mail" disabled', page)


# --- the delegate import --------------------------------------------------------------------------------------


@pytest.fixture
def invitation(api: Api) -> dict[str, Any]:
    return make_invitation(api, limit=5)


def test_the_templates_carry_the_vietnamese_headers(client: FlaskClient, invitation: dict[str, Any]) -> None:
    response = client.get(url(invitation, "/mau-danh-sach.csv"))
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    assert response.data.startswith(b"\xef\xbb\xbf")
    assert response.data.decode("utf-8-sig").strip() == ",".join(HEADERS)
    response = client.get(url(invitation, "/mau-danh-sach.xlsx"))
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).worksheets[0]
    assert [c.value for c in sheet[1]] == HEADERS
    assert sheet.column_dimensions["D"].number_format == "@", "phone numbers keep their leading zero"
    assert sheet.max_row == 1


def test_a_good_xlsx_is_previewed_then_saved_then_mailed(
    client: FlaskClient, invitation: dict[str, Any], mail: MailCatcher
) -> None:
    template = client.get(url(invitation, "/mau-danh-sach.xlsx")).data
    book = openpyxl.load_workbook(io.BytesIO(template))
    sheet = book.worksheets[0]
    for index, person in enumerate([AN, BINH, CUONG], start=2):
        for column, value in enumerate(person, start=1):
            sheet.cell(row=index, column=column, value=value or None)
    out = io.BytesIO()
    book.save(out)
    before = snapshot()
    preview = upload(client, invitation, out.getvalue(), "ds.xlsx")
    assert preview.status_code == 200
    page_html = preview.get_data(as_text=True)
    assert "Xem trước: 3 đại biểu hợp lệ" in page_html and "Lê Văn Cường" in page_html and "0912345678" in page_html
    assert snapshot() == before, "the preview saves nothing"
    saved = save_preview(client, invitation, page_html)
    assert saved.status_code == 302
    assert names() == [AN[0], BINH[0], CUONG[0]]
    with database.connection_context():
        assert {d.mail_status for d in Delegate.select()} == {"pending"}, "the mails wait for Gửi Mail"
        assert AuditEntry.select().where(AuditEntry.action == "delegate.import").count() == 1
    page = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert "Đã thêm 3 đại biểu từ tệp" in page and "Gửi Mail (3)" in page
    sent = client.post(url(invitation, "/gui-mail"), data={"csrf_token": token(client, url(invitation))})
    assert sent.status_code == 302
    progress = client.get(url(invitation, "/tien-do")).get_json()
    assert progress["total"] == 3 and progress["pending"] == 3
    assert 'id="mail-progress-bar" max="3" value="0"' in client.get(url(invitation)).get_data(as_text=True)


def test_one_bad_row_saves_nothing_and_names_the_row_and_cell(client: FlaskClient, invitation: dict) -> None:
    before = snapshot()
    response = import_file(client, invitation, csv_bytes([AN, ["Trần Thị Bình", "", "khong-phai-email", ""], CUONG]))
    assert response.status_code == 400
    found = problems(response)
    assert len(found) == 1 and found[0].startswith("3 | C3 (Email) | ")
    assert "chưa lưu đại biểu nào" in response.get_data(as_text=True)
    assert snapshot() == before


def test_two_rows_with_one_email_name_the_second(client: FlaskClient, invitation: dict[str, Any]) -> None:
    response = import_file(client, invitation, csv_bytes([AN, [BINH[0], "", AN[2], ""]]))
    assert response.status_code == 400
    assert problems(response) == ["3 | C3 (Email) | Email này đã được dùng cho một đại biểu khác của đơn vị"]
    assert names() == []


def test_the_limit_names_the_first_row_over_it(client: FlaskClient, api: Api) -> None:
    invitation = make_invitation(api, limit=2)
    response = import_file(client, invitation, csv_bytes([AN, BINH, CUONG]))
    assert response.status_code == 400
    assert problems(response) == ["4 | — | Đơn vị chỉ được cử tối đa 2 đại biểu"]
    assert names() == []


def test_a_list_that_became_invalid_after_its_preview_saves_nothing(client: FlaskClient, api: Api) -> None:
    invitation = make_invitation(api, limit=2)
    preview = upload(client, invitation, csv_bytes([AN, BINH]))
    assert preview.status_code == 200
    assert api.register(invitation, name=CUONG[0], email=CUONG[2]).status_code == 201
    response = save_preview(client, invitation, preview.get_data(as_text=True))
    assert response.status_code == 400
    assert problems(response) == ["3 | — | Đơn vị chỉ được cử tối đa 2 đại biểu"]
    assert names() == [CUONG[0]]


def test_a_file_too_big_is_refused(client: FlaskClient, invitation: dict[str, Any]) -> None:
    rows = [[f"Người {i}", "Chuyên viên " + "x" * 80, f"nguoi{i}@example.vn", ""] for i in range(400)]
    data = csv_bytes(rows)
    assert 48 * 1024 < len(data) < 64 * 1024
    response = upload(client, invitation, data)
    assert response.status_code == 400
    assert "Tệp quá lớn" in response.get_data(as_text=True)
    assert names() == []


def test_a_full_list_of_200_rows_goes_through_preview_and_save(client: FlaskClient, api: Api) -> None:
    invitation = make_invitation(api)
    rows = [[f"Nguyễn Thị Thanh Hương {i}", "Phó Trưởng phòng Kế hoạch – Tài chính",
             f"nguyen.thi.thanh.huong{i}@example.vn", "0912345678"] for i in range(200)]
    response = import_file(client, invitation, csv_bytes(rows))
    assert response.status_code == 302, problems(response) or response.status_code
    assert len(names()) == 200


def test_more_rows_than_allowed_are_refused(client: FlaskClient, invitation: dict[str, Any]) -> None:
    response = upload(client, invitation, csv_bytes([[f"N {i}", "", f"n{i}@example.vn", ""] for i in range(201)]))
    assert response.status_code == 400
    assert "quá nhiều dòng (tối đa 200)" in response.get_data(as_text=True)
    assert names() == []


def test_a_request_over_the_app_limit_is_refused_whole(client: FlaskClient, invitation: dict[str, Any]) -> None:
    rows = [[f"Người {i}", "x" * 100, f"nguoi{i}@example.vn", ""] for i in range(600)]
    response = upload(client, invitation, csv_bytes(rows))
    assert response.status_code == 413
    assert names() == []


@pytest.mark.parametrize("posted", [
    "not json", "[]", '[["2", "A", "", "a@example.vn", ""]]', '[[2, "A", "", "a@example.vn"]]',
], ids=["text", "empty", "row-number-text", "short-row"])
def test_a_tampered_preview_is_refused(client: FlaskClient, invitation: dict[str, Any], posted: str) -> None:
    csrf = token(client, url(invitation, "/nhap"))
    response = client.post(url(invitation, "/nhap/luu"), data={"csrf_token": csrf, "danh-sach": posted})
    assert response.status_code == 400
    assert "tải tệp lên lại" in response.get_data(as_text=True)
    assert names() == []


def test_a_changed_preview_goes_through_the_rules_again(client: FlaskClient, invitation: dict[str, Any]) -> None:
    csrf = token(client, url(invitation, "/nhap"))
    posted = '[[2, "Nguyễn Văn An", "", "an.nguyen@example.vn", ""], [3, "B", "", "khong-email", ""]]'
    response = client.post(url(invitation, "/nhap/luu"), data={"csrf_token": csrf, "danh-sach": posted})
    assert response.status_code == 400
    assert [p.split(" | ")[:2] for p in problems(response)] == [["3", "C3 (Email)"]]
    assert names() == []


@pytest.mark.parametrize("data", [
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n\x00\x00",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200,  # an old .xls (OLE)
], ids=["pdf", "xls"])
def test_a_file_of_another_type_is_refused(client: FlaskClient, invitation: dict[str, Any], data: bytes) -> None:
    response = upload(client, invitation, data, "ds.xlsx")
    assert response.status_code == 400
    assert "Loại tệp không được hỗ trợ" in response.get_data(as_text=True)
    assert names() == []


def test_a_zip_that_is_no_workbook_is_refused(client: FlaskClient, invitation: dict[str, Any]) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("ds.csv", csv_bytes([AN]))
    response = upload(client, invitation, out.getvalue(), "ds.xlsx")
    assert response.status_code == 400
    assert "không phải bảng tính XLSX hợp lệ" in response.get_data(as_text=True)
    assert names() == []


def test_windows_1258_is_read_as_vietnamese(client: FlaskClient, invitation: dict[str, Any]) -> None:
    data = cp1258("\r\n".join([",".join(HEADERS), ",".join(AN), ",".join(CUONG)]) + "\r\n")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    response = import_file(client, invitation, data)
    assert response.status_code == 302, problems(response) or response.get_data(as_text=True)
    assert names() == [AN[0], CUONG[0]]
    assert all(unicodedata.is_normalized("NFC", name) for name in names())


def test_utf8_with_a_byte_order_mark_is_read(client: FlaskClient, invitation: dict[str, Any]) -> None:
    response = import_file(client, invitation, b"\xef\xbb\xbf" + csv_bytes([AN, BINH], encoding="utf-8"))
    assert response.status_code == 302, problems(response)
    assert names() == [AN[0], BINH[0]]


def test_utf16_unicode_text_from_excel_is_read(client: FlaskClient, invitation: dict[str, Any]) -> None:
    data = ("\r\n".join("\t".join(r) for r in [HEADERS, AN]) + "\r\n").encode("utf-16")
    assert import_file(client, invitation, data, "ds.txt").status_code == 302
    assert names() == [AN[0]]


def test_bytes_no_encoding_reads_are_refused(client: FlaskClient, invitation: dict[str, Any]) -> None:
    data = csv_bytes([AN]) + b"Tr\x81\x8an,,x@example.vn,\r\n"
    response = upload(client, invitation, data)
    assert response.status_code == 400
    assert "mã hóa không phải UTF-8 hay Windows-1258" in response.get_data(as_text=True)
    bad_bom = upload(client, invitation, b"\xef\xbb\xbf" + cp1258(",".join(HEADERS) + "\r\n" + ",".join(AN)))
    assert bad_bom.status_code == 400 and "có dấu UTF-8" in bad_bom.get_data(as_text=True)
    assert names() == []


def test_a_semicolon_csv_from_excel_is_read(client: FlaskClient, invitation: dict[str, Any]) -> None:
    data = ("\r\n".join(";".join(r) for r in [HEADERS, AN]) + "\r\n").encode()
    assert import_file(client, invitation, data).status_code == 302
    assert names() == [AN[0]]


def test_a_formula_cell_is_refused_with_its_row_and_cell(client: FlaskClient, invitation: dict[str, Any]) -> None:
    data = xlsx_bytes([AN, [BINH[0], "=1+1", '=HYPERLINK("http://x.example","a@b.vn")', ""]])
    response = import_file(client, invitation, data, "ds.xlsx")
    assert response.status_code == 400
    found = problems(response)
    assert found[:2] == [
        "3 | B3 (Chức vụ) | Ô chứa công thức; hãy nhập giá trị (văn bản), không dùng công thức",
        "3 | C3 (Email) | Ô chứa công thức; hãy nhập giá trị (văn bản), không dùng công thức",
    ]
    assert names() == []


def test_a_csv_formula_is_refused_too(client: FlaskClient, invitation: dict[str, Any]) -> None:
    response = import_file(client, invitation, csv_bytes([AN, ["=cmd|' /C calc'!A0", "", BINH[2], ""]]))
    assert response.status_code == 400
    assert problems(response)[0].startswith("3 | A3 (Họ và tên) | Ô chứa công thức")
    assert names() == []


def test_a_missing_column_names_the_header_row(client: FlaskClient, invitation: dict[str, Any]) -> None:
    response = import_file(client, invitation, csv_bytes([["An", "0912345678"]], header=["Họ và tên", "Điện thoại"]))
    assert response.status_code == 400
    assert "Dòng 1 thiếu cột: Email" in response.get_data(as_text=True)


# --- the organisation import ----------------------------------------------------------------------------------

ORG_HEADERS = ["Tên đơn vị", "Lãnh đạo", "Số điện thoại", "Email"]


@pytest.fixture
def organiser(app: Flask) -> FlaskClient:
    with database.connection_context():
        make_users(app.extensions["vaora"].clock())
    client = app.test_client()
    assert staff_login(client, "chuyenvien").status_code == 302
    return client


def org_upload(client: FlaskClient, data: bytes, filename: str = "dv.csv") -> Any:
    return client.post("/invitations/don-vi/nhap", data={
        "csrf_token": page_token(client, "/invitations/don-vi/nhap"), "tep": (io.BytesIO(data), filename),
    }, content_type="multipart/form-data")


def org_names() -> list[str]:
    with database.connection_context():
        return [o.name for o in Organisation.select().order_by(Organisation.id)]


def test_the_office_imports_its_organisations(organiser: FlaskClient) -> None:
    template = organiser.get("/invitations/don-vi/mau-danh-sach.xlsx")
    assert [c.value for c in openpyxl.load_workbook(io.BytesIO(template.data)).worksheets[0][1]] == ORG_HEADERS
    data = xlsx_bytes([["Sở Y tế", "Ông Phạm Văn D", "0912000111", "syt@example.vn"],
                       ["Sở Giáo dục và Đào tạo", "Bà Vũ Thị E", "", "sgd@example.vn"]], header=ORG_HEADERS)
    preview = org_upload(organiser, data, "dv.xlsx")
    assert preview.status_code == 200
    page_html = preview.get_data(as_text=True)
    assert "Xem trước: 2 đơn vị hợp lệ" in page_html
    assert org_names() == []
    form = page_html[page_html.index('id="import-preview"'):]
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    saved = organiser.post("/invitations/don-vi/nhap/luu", data=MultiDict([(k, html.unescape(v)) for k, v in fields]),
                           content_type="multipart/form-data")
    assert saved.status_code == 302
    assert org_names() == ["Sở Y tế", "Sở Giáo dục và Đào tạo"]
    with database.connection_context():
        health = Organisation.get(Organisation.name == "Sở Y tế")
        assert (health.leader_name, health.phone, health.email) == ("Ông Phạm Văn D", "+84912000111", "syt@example.vn")


def test_a_bad_organisation_list_saves_nothing(organiser: FlaskClient, api: Api) -> None:
    api.organisation("Sở Tài chính")
    data = csv_bytes([["Sở Y tế", "", "", "syt@example.vn"], ["sở tài chính", "", "", ""],
                      ["Sở Nội vụ", "", "12", "khong-email"], ["Sở Y tế", "", "", ""]], header=ORG_HEADERS)
    response = org_upload(organiser, data)
    assert response.status_code == 400
    found = problems(response)
    assert [f.split(" | ")[:2] for f in found] == [["3", "A3 (Tên đơn vị)"], ["4", "C4 (Số điện thoại)"],
                                                   ["4", "D4 (Email)"], ["5", "A5 (Tên đơn vị)"]]
    assert org_names() == ["Sở Tài chính"]


def test_an_existing_organisation_is_refused_by_the_api_and_the_import(organiser: FlaskClient, api: Api) -> None:
    api.organisation("Sở Tài chính")
    response = api.post("/api/v1/organisations", {"name": "sở tài chính"})
    assert response.status_code == 409 and response.get_json()["fields"]["name"] == "Đơn vị này đã tồn tại"
    refused = org_upload(organiser, csv_bytes([["Sở tài chính", "", "", ""]], header=ORG_HEADERS))
    assert problems(refused) == ["2 | A2 (Tên đơn vị) | Đơn vị này đã tồn tại"]
    assert org_names() == ["Sở Tài chính"]


def test_only_the_organiser_imports_organisations(app: Flask, organiser: FlaskClient) -> None:
    leader = app.test_client()
    assert staff_login(leader, "lanhdao").status_code == 302
    assert leader.get("/invitations/don-vi/nhap").status_code == 403
    assert app.test_client().get("/invitations/don-vi/nhap").status_code in (302, 401)
