"""The formal giấy mời (Decree 30/2020): an administrator configures the issuing body on its page, the leader
previews the letter before approving, and the PDF the organisation receives carries every part of the layout
(read back with pdftotext); numbers take the body's symbols (GM by default) and numbers given before stay valid."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.core.tokens import digest
from central.invitations.letter import date_line, recipients_of
from central.invitations.letterhead import FALLBACK
from central.invitations.models import Invitation
from central.invitations.services import find_invitation
from devtools.mailcatcher import MailCatcher

from .conftest import Clock
from .staff import login, make_users, post_form, setup_meeting

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
BODY = {
    "parent_name": "UBND tỉnh Quảng Ngãi", "name": "Văn phòng", "doc_symbol": "GM", "body_symbol": "UBND",
    "place": "Quảng Ngãi", "signing_authority": "KT. Chánh Văn phòng", "signer_position": "Phó Chánh Văn phòng",
    "signer_name": "Nguyễn Thị Hồng Hạnh", "recipients": "Chủ tịch, các PCT UBND tỉnh (b/c);\nLưu: VT, TH.",
    "is_default": "y",
}


@pytest.fixture
def world(app: Flask, client: FlaskClient, clock: Clock) -> dict[str, Any]:
    make_users(clock())
    return setup_meeting(app, client)


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "giay-moi.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout
    return " ".join(text.split())


def _add_body(client: FlaskClient, **changes: str) -> Any:
    login(client, "admin")
    return post_form(client, "/admin/giay-moi", "/admin/giay-moi", {**BODY, **changes})


def _draft(client: FlaskClient, world: dict[str, Any]) -> int:
    login(client, "chuyenvien")
    url = f"/meetings/{world['meeting']}"
    post_form(client, url, f"{url}/invitations", {"organisation_ids": [str(world["orgs"][0])]})
    return int(re.findall(r'href="/invitations/(\d+)"', client.get(url).text)[0])


def _in_order(text: str, parts: list[str]) -> None:
    """Every part is in ``text``, in this order."""
    at = 0
    for part in parts:
        found = text.find(part, at)
        assert found >= 0, f"{part!r} missing (or out of order) in: {text}"
        at = found + len(part)


def test_the_leader_previews_the_giay_moi_and_the_organisation_receives_it_in_the_decree_30_layout(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher, clock: Clock, tmp_path: Path
) -> None:
    assert _add_body(client).status_code == 302
    page = client.get("/admin/giay-moi").text
    assert "Văn phòng" in page and "…/GM-UBND" in page
    invitation_id = _draft(client, world)
    mail.clear()

    login(client, "lanhdao")
    page = client.get(f"/invitations/{invitation_id}").text
    assert "Xem trước giấy mời (PDF)" in page and "Duyệt và gửi" in page
    preview = client.get(f"/invitations/{invitation_id}/giay-moi.pdf")
    assert preview.status_code == 200 and preview.mimetype == "application/pdf"
    today = clock().astimezone(HANOI)
    dated = f"Quảng Ngãi, ngày {today.day:02d} tháng {today.month if today.month > 2 else f'{today.month:02d}'} " \
            f"năm {today.year}"
    text = _pdf_text(preview.data, tmp_path)
    assert re.search(r"Số: \s*/GM-UBND", text), "a draft has no number yet, only the symbol"
    assert dated in text and "đường dẫn đăng ký riêng" in text and text.startswith("DỰ THẢO")

    post_form(client, f"/invitations/{invitation_id}", f"/invitations/{invitation_id}/approve", {})
    (message,) = mail.wait_for(1)
    (pdf,) = [p for p in message.iter_attachments() if p.get_content_type() == "application/pdf"]
    text = _pdf_text(pdf.get_content(), tmp_path)
    _in_order(text, ["UBND TỈNH QUẢNG NGÃI", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "VĂN PHÒNG",
                     "Độc lập - Tự do - Hạnh phúc", "Số: 1/GM-UBND", dated, "GIẤY MỜI", "Kính gửi: Sở Tài chính",
                     "Văn phòng UBND tỉnh Quảng Ngãi trân trọng kính mời", "Hội nghị tổng kết công tác năm 2025",
                     "Thời gian:", "Địa điểm: Hội trường tầng 2", "Điểm cầu: Điểm cầu huyện Sơn Tịnh",
                     "Chủ trì: Chủ tịch UBND tỉnh", "https://vaora.example.vn/registration/1/GM-UBND?secret=",
                     "Trân trọng kính mời./.", "Nơi nhận:", "- Như trên;", "- Chủ tịch, các PCT UBND tỉnh (b/c);",
                     "- Lưu: VT, TH.", "KT. CHÁNH VĂN PHÒNG", "PHÓ CHÁNH VĂN PHÒNG", "Nguyễn Thị Hồng Hạnh"])
    assert "DỰ THẢO" not in text
    assert "Thư mời số 1/GM-UBND" in client.get(f"/invitations/{invitation_id}").text
    numbered = _pdf_text(client.get(f"/invitations/{invitation_id}/giay-moi.pdf").data, tmp_path)
    assert "Số: 1/GM-UBND" in numbered and dated in numbered


def test_an_office_without_an_issuing_body_numbers_gm_and_earlier_tm_numbers_stay_valid(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher, clock: Clock, tmp_path: Path
) -> None:
    with database.connection_context():  # approved before the symbol became GM
        Invitation.create(meeting=world["meeting"], organisation=world["orgs"][1], number="3/TM-UBND",
                          year=clock().astimezone(HANOI).year, seq=3, secret_hash=digest("s3"), status="sent",
                          created_at=clock())
    invitation_id = _draft(client, world)
    login(client, "lanhdao")
    post_form(client, f"/invitations/{invitation_id}", f"/invitations/{invitation_id}/approve", {})
    with database.connection_context():
        assert Invitation.get_by_id(invitation_id).number == "4/GM-UBND", "the year's register goes on"
        assert find_invitation("3/TM-UBND", "s3", guard=None).number == "3/TM-UBND"
    (message,) = mail.wait_for(1)
    (pdf,) = [p for p in message.iter_attachments() if p.get_content_type() == "application/pdf"]
    text = _pdf_text(pdf.get_content(), tmp_path)
    _in_order(text, ["UBND", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "VĂN PHÒNG", "Số: 4/GM-UBND", "GIẤY MỜI",
                     "Văn phòng UBND trân trọng kính mời",
                     "Nơi nhận:", "- Như trên;", "- Lưu: VT."])


def test_the_issuing_body_page_refuses_bad_symbols_and_a_missing_name(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    response = _add_body(client, name="", body_symbol="ubnd/x")
    assert response.status_code == 400
    assert "Không được để trống" in response.text and "Chỉ gồm chữ in hoa" in response.text
    assert "Chưa có cơ quan ban hành" in client.get("/admin/giay-moi").text
    assert _add_body(client, body_symbol="vp-ubnd").status_code == 302, "symbols are written in capitals"
    assert "…/GM-VP-UBND" in client.get("/admin/giay-moi").text
    assert _add_body(client).status_code == 400, "a second body of the same name"
    login(client, "chuyenvien")
    assert client.get("/admin/giay-moi").status_code in (302, 403), "the page is the administrator's"


def test_the_date_line_pads_days_below_10_and_the_months_january_and_february() -> None:
    assert date_line("Hà Nội", datetime(2026, 2, 4, 20, 0, tzinfo=HANOI)) == "Hà Nội, ngày 04 tháng 02 năm 2026"
    assert date_line("Hà Nội", datetime(2026, 12, 7, 9, 0, tzinfo=HANOI)) == "Hà Nội, ngày 07 tháng 12 năm 2026"
    assert date_line("Huế", datetime(2026, 3, 15, 9, 0, tzinfo=HANOI)) == "Huế, ngày 15 tháng 3 năm 2026"
    assert recipients_of(FALLBACK) == ["- Như trên;", "- Lưu: VT."]


def test_an_invitation_drafted_for_another_issuing_body_carries_its_letterhead_and_symbol(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher, tmp_path: Path
) -> None:
    from .conftest import AUTH

    assert _add_body(client).status_code == 302
    assert _add_body(client, parent_name="", name="Ủy ban nhân dân tỉnh Quảng Ngãi", doc_symbol="GM",
                     body_symbol="UBND-VX", signing_authority="TM. Ủy ban nhân dân", signer_position="Chủ tịch",
                     signer_name="Đặng Văn Minh", recipients="", is_default="").status_code == 302
    login(client, "chuyenvien")
    url = f"/meetings/{world['meeting']}"
    page = client.get(url).text
    assert "Cơ quan ban hành giấy mời" in page
    body_id = int(re.search(r'<option value="(\d+)">Ủy ban nhân dân tỉnh Quảng Ngãi</option>', page).group(1))
    post_form(client, url, f"{url}/invitations", {"organisation_ids": [str(world["orgs"][1])],
                                                  "issuing_body_id": str(body_id)})
    invitation_id = int(re.findall(r'href="/invitations/(\d+)"', client.get(url).text)[0])
    refused = client.post("/api/v1/invitations", headers=AUTH, json={
        "meeting_id": world["meeting"], "organisation_id": world["orgs"][0], "issuing_body_id": 999999})
    assert refused.status_code == 400 and "Không tìm thấy cơ quan ban hành" in refused.text

    mail.clear()
    login(client, "lanhdao")
    post_form(client, f"/invitations/{invitation_id}", f"/invitations/{invitation_id}/approve", {})
    (message,) = mail.wait_for(1)
    (pdf,) = [p for p in message.iter_attachments() if p.get_content_type() == "application/pdf"]
    text = _pdf_text(pdf.get_content(), tmp_path)
    _in_order(text, ["ỦY BAN NHÂN DÂN TỈNH", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "QUẢNG NGÃI", "Số: 1/GM-UBND-VX",
                     "GIẤY MỜI", "Kính gửi: Sở Xây dựng", "Ủy ban nhân dân tỉnh Quảng Ngãi trân trọng kính mời",
                     "Nơi nhận:", "- Như trên;", "- Lưu: VT.", "TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH", "Đặng Văn Minh"])
    assert "VĂN PHÒNG" not in text
