"""Bad input on the staff pages: each gets a clear Vietnamese message and changes nothing; names with HTML
are shown escaped; documents are checked by content and size."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.core.models import BaseModel
from central.invitations.models import Organisation
from central.meetings.models import Meeting, MeetingDocument

from .conftest import Api, Clock
from .staff import csrf, login, make_users, post_form, setup_meeting

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


@pytest.fixture
def world(app: Flask, client: FlaskClient, clock: Clock) -> dict[str, Any]:
    """Accounts, venues, organisations and a meeting; the organiser is logged in."""
    make_users(clock())
    ids = setup_meeting(app, client)
    login(client, "chuyenvien")
    return ids


def _count(model: type[BaseModel]) -> int:
    with database.connection_context():
        return model.select().count()


def test_too_long_and_missing_fields_on_the_meeting_form(client: FlaskClient, world: dict[str, Any]) -> None:
    before = _count(Meeting)
    response = post_form(client, "/meetings/new", "/meetings/new", {
        "title": "x" * 501, "starts_at": "2025-03-10T08:00", "ends_at": "2025-03-10T07:00",
        "main_venue_id": "0", "scheme": "compact", "entry_policy": "single",
    })
    assert response.status_code == 400
    page = response.text
    assert "Tối đa 500 ký tự" in page
    assert "Giờ kết thúc phải sau giờ bắt đầu" in page
    assert "Chọn hội trường chính" in page
    assert 'aria-invalid="true"' in page
    assert _count(Meeting) == before


def test_meeting_created_as_draft_through_the_page(client: FlaskClient, world: dict[str, Any]) -> None:
    response = post_form(client, "/meetings/new", "/meetings/new", {
        "title": "Họp <script>alert(1)</script> giao ban", "agenda": "Dòng 1\r\nDòng 2",
        "starts_at": "2025-03-12T08:00", "ends_at": "2025-03-12T10:30", "main_venue_id": str(world["main"]),
        "remote_venue_ids": [str(world["remote"])], "scheme": "compact", "entry_policy": "single",
        "registration_deadline": "2025-03-11T17:00",
    })
    assert response.status_code == 302
    page = client.get(response.location).text
    assert "Họp &lt;script&gt;alert(1)&lt;/script&gt; giao ban" in page
    assert "<script>alert(1)</script>" not in page
    assert "08:00 12/03/2025" in page and "Điểm cầu huyện Sơn Tịnh" in page and "Dự thảo" in page
    with database.connection_context():
        meeting = Meeting.select().order_by(Meeting.id.desc()).get()
        assert meeting.starts_at.isoformat() == "2025-03-12T01:00:00+00:00"
        assert (meeting.status, meeting.site_id, meeting.agenda) == ("draft", "hq", "Dòng 1\nDòng 2")


def test_invalid_email_and_phone_on_the_organisation_form(client: FlaskClient, world: dict[str, Any]) -> None:
    client.post("/logout", data={"csrf_token": csrf(client.get("/meetings/").text)})
    login(client, "admin")
    before = _count(Organisation)
    response = post_form(client, "/admin/organisations", "/admin/organisations", {
        "name": "Sở <b>Nội vụ</b>", "leader_phone": "12345", "office_email": "vanphong@@example",
    })
    assert response.status_code == 400
    assert "Số điện thoại không hợp lệ (ví dụ 0912345678)" in response.text
    assert "Địa chỉ email không hợp lệ" in response.text
    assert _count(Organisation) == before
    ok = post_form(client, "/admin/organisations", "/admin/organisations", {
        "name": "Sở <b>Nội vụ</b>", "leader_phone": "0912 345 679", "office_email": "snv@example.vn",
    })
    assert ok.status_code == 302
    listing = client.get("/admin/organisations").text
    assert "Sở &lt;b&gt;Nội vụ&lt;/b&gt;" in listing and "<b>Nội vụ</b>" not in listing
    with database.connection_context():
        assert Organisation.get(Organisation.office_email == "snv@example.vn").leader_phone == (
            "+84912345679"
        )


def test_documents_checked_by_content_and_downloadable(client: FlaskClient, world: dict[str, Any]) -> None:
    url = f"/meetings/{world['meeting']}"

    def upload(name: str, data: bytes) -> Any:
        return post_form(client, url, f"{url}/documents", {"file": (io.BytesIO(data), name)},
                         content_type="multipart/form-data")

    png_as_pdf = upload("bao-cao.pdf", b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    assert png_as_pdf.status_code == 303
    assert "Chỉ nhận tệp PDF, DOCX hoặc XLSX" in client.get(url).text
    docx_as_pdf = upload("bao-cao.pdf", _docx())
    assert "Phần mở rộng của tệp không khớp nội dung" in client.get(png_as_pdf.location).text
    assert docx_as_pdf.status_code == 303
    assert _count(MeetingDocument) == 0

    assert upload("Báo cáo tổng kết.pdf", PDF).status_code == 303
    assert upload("../../Chương trình.docx", _docx()).status_code == 303
    page = client.get(url).text
    assert "Báo cáo tổng kết.pdf" in page and "Chương trình.docx" in page
    with database.connection_context():
        pdf_doc = MeetingDocument.get(MeetingDocument.kind == "pdf")
    download = client.get(f"{url}/documents/{pdf_doc.id}")
    assert download.status_code == 200 and download.data == PDF
    assert download.mimetype == "application/pdf"

    # An organisation downloads a document the office shared through its invitation link; a wrong secret, or a
    # document not shared, gets nothing.
    invitation = Api(client).invitation(world["meeting"], world["orgs"][0])
    public = f"/meetings/documents/{pdf_doc.id}?number={invitation['number']}&secret="
    anonymous = client.application.test_client()
    assert anonymous.get(public + invitation["secret"]).status_code == 404, "not shared yet"
    shared = Api(client).post(f"/api/v1/meetings/{world['meeting']}/documents/{pdf_doc.id}/share", {"shared": True})
    assert shared.status_code == 200, shared.get_json()
    assert anonymous.get(public + invitation["secret"]).data == PDF
    assert anonymous.get(public + "sai").status_code == 404


def test_oversized_upload_is_413(client: FlaskClient, world: dict[str, Any]) -> None:
    url = f"/meetings/{world['meeting']}"
    big = PDF + b"0" * (20 * 1024 * 1024)
    response = post_form(client, url, f"{url}/documents", {"file": (io.BytesIO(big), "lon.pdf")},
                         content_type="multipart/form-data")
    assert response.status_code == 413
    assert "Tệp hoặc dữ liệu gửi lên quá lớn." in response.text
    assert _count(MeetingDocument) == 0
    # Other forms keep the small limit.
    huge_form = post_form(client, "/meetings/new", "/meetings/new", {"title": "x" * 70_000})
    assert huge_form.status_code == 413
