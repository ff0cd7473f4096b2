"""The audit log reads as sentences naming people by full name ("Lãnh đạo duyệt duyệt thư mời 1/GM-UBND"), in
the page's language; the filters name people and actions, and an action without a sentence still shows."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from central.core.audit import audit
from central.core.db import database

from .conftest import Api, Clock
from .staff import login, make_users


def _sentences(html: str) -> list[str]:
    rows = re.findall(r'<tr data-action="[^"]+"><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>', html)
    return [" ".join(row.split()) for row in rows]


def test_the_audit_log_tells_who_did_what_in_sentences(app: Flask, client: FlaskClient, api: Api,
                                                       clock: Clock) -> None:
    make_users(clock())
    invitation = api.invitation(api.meeting(title="Họp giao ban tháng 3")["id"])
    assert api.register(invitation, name="Trần Văn Bình", position="Chuyên viên").status_code == 201
    with database.connection_context():
        audit("admin", "something.new", "thing:7", {"x": 1}, now=clock() + timedelta(minutes=1))
    login(client, "admin")
    page = client.get("/admin/audit").text
    sentences = _sentences(page)
    number = invitation["number"]
    assert f"Lãnh đạo duyệt duyệt thư mời {number}" in sentences
    assert f"Đơn vị được mời (thư mời {number}) đăng ký đại biểu Trần Văn Bình cho thư mời {number}" in sentences
    assert "Ứng dụng kết nối (mã API chung) tạo cuộc họp “Họp giao ban tháng 3”" in sentences
    assert "Admin: thao tác something.new với thing:7" in sentences, "an action without a sentence still shows"
    assert not any(re.search(r"\b[a-z_]+\.[a-z_]+\b", s) for s in sentences if "something.new" not in s)
    assert '<option value="lanhdao-duyet" >Lãnh đạo duyệt</option>' in page
    assert '<option value="invitation.approve" >Duyệt thư mời</option>' in page

    english = _sentences(client.get("/admin/audit?lang=en").text)
    assert f"Lãnh đạo duyệt approved invitation {number}" in english
    assert "API client (shared token) created the meeting “Họp giao ban tháng 3”" in english
    filtered = _sentences(client.get("/admin/audit?lang=vi&action=delegate.register").text)
    assert filtered == [f"Đơn vị được mời (thư mời {number}) đăng ký đại biểu Trần Văn Bình cho thư mời {number}"]


def test_details_that_do_not_fit_the_sentence_fall_back_without_an_error(app: Flask, client: FlaskClient,
                                                                         clock: Clock) -> None:
    make_users(clock())
    with database.connection_context():
        audit("ghost", "invitation.approve", "invitation:999", {}, now=clock())  # no number in the details
    login(client, "admin")
    response = client.get("/admin/audit")
    assert response.status_code == 200
    assert "ghost: thao tác invitation.approve với invitation:999" in _sentences(response.text)
