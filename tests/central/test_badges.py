"""Badges and name cards for the hall: from the meeting page, A6 and A7, in protocol order (the organisation's
rank, then the delegate's position, both set on the administrator's "Thứ tự lễ tân" page), Vietnamese text read
back from the PDF; replaced delegates get none; bad parameters are refused."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.invitations.protocol import DEFAULT_POSITIONS, position_rank
from central.registration.models import Delegate

from .conftest import Api, Clock
from .staff import login, make_users, post_form

PEOPLE = [  # organisation, name, position
    ("Sở Tài chính", "Lê Thị Bích Ngọc", "Chuyên viên"),
    ("Sở Tài chính", "Phạm Văn Đức", "Giám đốc Sở"),
    ("Sở Y tế", "Trần Thị Hương", "Phó Giám đốc"),
    ("Sở Y tế", "Nguyễn Quang Vinh", "Giám đốc"),
    ("Sở Xây dựng", "Đỗ Minh Khôi", "Trưởng phòng Quản lý xây dựng"),
]


def _pages(pdf: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "the.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout
    return [" ".join(page.split()) for page in text.split("\f") if page.strip()]


def _page_size(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "size.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    return next(line for line in info.splitlines() if line.startswith("Page size"))


@pytest.fixture
def meeting(app: Flask, client: FlaskClient, api: Api, clock: Clock) -> dict[str, Any]:
    make_users(clock())
    meeting = api.meeting(title="Hội nghị triển khai nhiệm vụ năm 2026")
    orgs: dict[str, dict[str, Any]] = {}
    for org_name, name, position in PEOPLE:
        if org_name not in orgs:
            orgs[org_name] = api.invitation(meeting["id"], api.organisation(org_name)["id"])
        email = f"{len(name)}.{abs(hash(name)) % 10000}@example.vn"
        response = api.register(orgs[org_name], name=name, position=position, email=email)
        assert response.status_code == 201, response.get_json()
    replaced = api.register(orgs["Sở Xây dựng"], name="Hoàng Văn Cũ", position="Chủ tịch", email="cu@example.vn")
    with database.connection_context():  # replaced: the code is revoked
        Delegate.update(revoked_at=clock()).where(Delegate.id == replaced.get_json()["id"]).execute()
    return {"id": meeting["id"], "orgs": {name: inv["organisation_id"] for name, inv in orgs.items()}}


def test_badges_and_name_cards_follow_the_protocol_order_set_by_the_administrator(
    client: FlaskClient, meeting: dict[str, Any], tmp_path: Path
) -> None:
    login(client, "chuyenvien")
    page = client.get(f"/meetings/{meeting['id']}").text
    assert "Thẻ đeo A6" in page and "Biển tên A7" in page
    url = f"/meetings/{meeting['id']}/the-dai-bieu.pdf"

    # No ranks yet: organisations by name, then positions in the default order.
    pages = _pages(client.get(url).data, tmp_path)
    assert [p.split("ĐẠI BIỂU ")[1].split(" ")[0:2] for p in pages] == [
        ["Phạm", "Văn"], ["Lê", "Thị"], ["Đỗ", "Minh"], ["Nguyễn", "Quang"], ["Trần", "Thị"]]
    assert all("Hội nghị triển khai nhiệm vụ năm 2026" in p for p in pages)
    assert "Giám đốc Sở Phạm" not in pages[0] and "Phạm Văn Đức Giám đốc Sở Sở Tài chính" in pages[0]
    assert not any("Hoàng Văn Cũ" in p for p in pages), "a removed delegate gets no badge"

    login(client, "admin")
    ranks = {f"rank-{meeting['orgs']['Sở Y tế']}": "1", f"rank-{meeting['orgs']['Sở Xây dựng']}": "2"}
    positions = "Giám đốc\nPhó Giám đốc\nChuyên viên\nTrưởng phòng"
    response = post_form(client, "/admin/thu-tu-le-tan", "/admin/thu-tu-le-tan",
                         {"position_order": positions, **ranks})
    assert response.status_code == 302
    login(client, "chuyenvien")
    for kind, size, expected in (("the-deo", "A6", "297.64 x 419.53 pts"), ("bien-ten", "A7", "297.64 x 209.76 pts")):
        response = client.get(f"{url}?loai={kind}&kho={size}")
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        assert expected in _page_size(response.data, tmp_path)
        names = [next(n for _o, n, _p in PEOPLE if n in p) for p in _pages(response.data, tmp_path)]
        assert names == ["Nguyễn Quang Vinh", "Trần Thị Hương", "Đỗ Minh Khôi", "Phạm Văn Đức", "Lê Thị Bích Ngọc"]


def test_bad_parameters_and_ranks_are_refused(client: FlaskClient, meeting: dict[str, Any]) -> None:
    login(client, "chuyenvien")
    url = f"/meetings/{meeting['id']}/the-dai-bieu.pdf"
    assert client.get(f"{url}?kho=A4").status_code == 400
    assert client.get(f"{url}?loai=poster").status_code == 400
    assert client.get("/meetings/999999/the-dai-bieu.pdf").status_code == 404
    login(client, "admin")
    response = post_form(client, "/admin/thu-tu-le-tan", "/admin/thu-tu-le-tan",
                         {"position_order": "Giám đốc", f"rank-{meeting['orgs']['Sở Y tế']}": "một"})
    assert response.status_code == 400 and "Thứ tự phải là số từ 1 đến 9999" in response.text


def test_a_position_matches_the_longest_configured_one_it_starts_with() -> None:
    order = list(DEFAULT_POSITIONS)
    assert position_rank("Phó Giám đốc Sở Y tế", order) == order.index("Phó Giám đốc")
    assert position_rank("giám đốc", order) == order.index("Giám đốc")
    assert position_rank("Chuyên viên chính", order) == order.index("Chuyên viên chính")
    assert position_rank("Kế toán", order) == len(order)
