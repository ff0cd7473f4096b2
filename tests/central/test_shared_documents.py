"""Documents travel: the meeting documents the office marks as shared are linked from the invitation e-mail and
listed on the registration page, download with the invitation's secret (never without it, never an unshared one),
and every download is audited."""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.core.db import database
from central.core.models import AuditEntry
from devtools.approval import mail_text
from devtools.mailcatcher import MailCatcher

from .conftest import AUTH, Clock
from .staff import login, make_users, post_form, setup_meeting

AGENDA = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n% chuong trinh\n"
DRAFT_REPORT = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n% du thao noi bo\n"


@pytest.fixture
def world(app: Flask, client: FlaskClient, clock: Clock) -> dict[str, Any]:
    """Accounts, venues, organisations, a meeting with two documents: the agenda shared, an internal draft not."""
    make_users(clock())
    ids = setup_meeting(app, client, orgs=1)
    uploaded = {}
    for name, data in (("Chương trình hội nghị.pdf", AGENDA), ("Dự thảo báo cáo (nội bộ).pdf", DRAFT_REPORT)):
        answer = client.post(f"/api/v1/meetings/{ids['meeting']}/documents", headers=AUTH,
                             data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")
        assert answer.status_code == 201, answer.get_json()
        assert answer.get_json()["shared"] is False, "a document stays with the staff until the office shares it"
        uploaded[name] = answer.get_json()["id"]
    agenda, internal = uploaded.values()
    shared = client.post(f"/api/v1/meetings/{ids['meeting']}/documents/{agenda}/share", json={"shared": True},
                         headers=AUTH)
    assert shared.status_code == 200 and shared.get_json()["shared"] is True
    assert client.post(f"/api/v1/meetings/{ids['meeting']}/documents/{agenda}/share", json={"shared": "yes"},
                       headers=AUTH).status_code == 400
    # On the meeting page the clerk shares the internal draft by mistake, then takes it back.
    login(client, "chuyenvien")
    url = f"/meetings/{ids['meeting']}"
    for flag in ("1", "0"):
        post_form(client, url, f"{url}/documents/{internal}/share", {"shared": flag})
    page = client.get(url).text
    assert page.count('data-shared="1"') == 1 and "Gửi kèm cho đơn vị được mời" in page
    # and drafts the invitation, which the leader approves.
    post_form(client, url, f"{url}/invitations", {"organisation_ids": [str(ids["orgs"][0])]})
    (invitation_id,) = [int(x) for x in re.findall(r'href="/invitations/(\d+)"', client.get(url).text)]
    login(client, "lanhdao")
    post_form(client, f"/invitations/{invitation_id}", f"/invitations/{invitation_id}/approve", {})
    return {**ids, "agenda": agenda, "internal": internal}


def test_the_invitation_mail_links_the_shared_document_and_the_link_downloads_it_audited(
    app: Flask, client: FlaskClient, world: dict[str, Any], mail: MailCatcher
) -> None:
    (message,) = mail.wait_for(1)
    text = message.get_body(("plain",)).get_content()
    assert "Tài liệu họp (tải về bằng đường dẫn riêng của Quý đơn vị):" in text
    assert "Chương trình hội nghị.pdf (PDF, 0 KB)" in text and "Dự thảo báo cáo" not in mail_text(message)
    html = message.get_body(("html",)).get_content()
    links = re.findall(r'<ul id="shared-documents"><li><a href="([^"]+)">Chương trình hội nghị.pdf</a>', html)
    assert len(links) == 1
    link = links[0].replace("&amp;", "&")
    assert link.startswith(f"https://vaora.example.vn/dang-ky/1/GM-UBND/tai-lieu/{world['agenda']}?s=")
    assert link in text
    assert message.get_content_type() == "multipart/mixed" and len(list(message.iter_attachments())) == 1

    anonymous = app.test_client()  # the organisation's secretary: no account, only the link
    parts = urlsplit(link)
    download = anonymous.get(f"{parts.path}?{parts.query}")
    assert download.status_code == 200 and download.data == AGENDA
    assert download.headers["Content-Disposition"].startswith("attachment")
    with database.connection_context():
        entry = AuditEntry.select().where(AuditEntry.action == "document.download").get()
        assert entry.actor == "invitation:1/GM-UBND" and entry.target == f"meeting:{world['meeting']}"
        assert "Chương trình hội nghị.pdf" in entry.details
        shares = [e.action for e in AuditEntry.select().where(AuditEntry.action.startswith("document.")
                                                              ).order_by(AuditEntry.id)]
    assert shares == ["document.upload", "document.upload", "document.share", "document.share",
                      "document.unshare", "document.download"]

    # Without the secret, with a wrong one, or for the unshared document: the same 404.
    secret = parts.query.removeprefix("s=")
    base = f"/dang-ky/1/GM-UBND/tai-lieu/{world['agenda']}"
    assert anonymous.get(base).status_code == 404
    assert anonymous.get(f"{base}?s=sai-ma-bi-mat").status_code == 404
    assert anonymous.get(f"/dang-ky/1/GM-UBND/tai-lieu/{world['internal']}?s={secret}").status_code == 404
    old_route = f"/meetings/documents/{world['internal']}"
    assert anonymous.get(old_route, query_string={"number": "1/GM-UBND", "secret": secret}).status_code == 404
    agenda_old_route = anonymous.get(f"/meetings/documents/{world['agenda']}",
                                     query_string={"number": "1/GM-UBND", "secret": secret})
    assert agenda_old_route.status_code == 200 and agenda_old_route.data == AGENDA


def test_the_registration_page_lists_only_the_shared_documents(
    app: Flask, world: dict[str, Any], mail: MailCatcher
) -> None:
    (message,) = mail.wait_for(1)
    secret = re.search(r"/registration/1/GM-UBND\?secret=([^\s\"<&]+)", mail_text(message)).group(1)
    page = app.test_client().get(f"/dang-ky/1/GM-UBND?s={secret}").text
    listed = re.search(r'<ul id="shared-documents"[^>]*>(.*?)</ul>', page, re.S).group(1)
    assert "Chương trình hội nghị.pdf" in listed and "Dự thảo báo cáo" not in page
    href = re.search(r'href="([^"]+)"', listed).group(1).replace("&amp;", "&")
    assert app.test_client().get(href).data == AGENDA
