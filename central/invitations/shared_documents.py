"""The meeting documents an invitation carries: links in its e-mail to the documents the office shared.

Each link opens the registration page's download (``/dang-ky/<number>/tai-lieu/<id>?s=<secret>``), which
checks the invitation's secret like every registration page and audits the download. The e-mail itself is
built by :mod:`central.invitations.letter`; :func:`add_links` appends a "Tài liệu họp" list to its text and
HTML parts, so the letter stays one thing and the documents another.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, quote, urlsplit

from central.invitations.models import Invitation
from central.meetings.documents import shared_documents


@dataclass(frozen=True)
class DocumentLink:
    """One shared document as the e-mail names it."""

    filename: str
    kind: str
    size: int
    url: str


def document_url(public_url: str, number: str, secret: str, document_id: int) -> str:
    """Return the download link of a shared document for the holder of an invitation's secret."""
    return (f"{public_url.rstrip('/')}/dang-ky/{quote(number, safe='/')}/tai-lieu/{document_id}"
            f"?s={quote(secret, safe='')}")


def links_for(invitation: Invitation, registration_link: str) -> list[DocumentLink]:
    """The links to the meeting's shared documents, made from the invitation's registration link (the
    ``/registration/<number>?secret=`` one its e-mail carries); none when the link is not of that form."""
    parts = urlsplit(registration_link)
    secret = (parse_qs(parts.query).get("secret") or parse_qs(parts.query).get("s") or [""])[0]
    base, found, _ = registration_link.partition("/registration/")
    if not found or not secret or not invitation.number:
        return []
    return [DocumentLink(d.filename, d.kind, d.size, document_url(base, invitation.number, secret, d.id))
            for d in shared_documents(invitation.meeting_id)]


def _size(size: int) -> str:
    return f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / (1024 * 1024):.1f} MB"


def add_links(message: EmailMessage, links: list[DocumentLink]) -> None:
    """Append the "Tài liệu họp" list to the message's plain-text and HTML bodies (nothing when no links)."""
    if not links:
        return
    text = "\n\nTài liệu họp (tải về bằng đường dẫn riêng của Quý đơn vị):\n" + "".join(
        f"- {link.filename} ({link.kind.upper()}, {_size(link.size)}): {link.url}\n" for link in links)
    items = "".join(
        f'<li><a href="{html.escape(link.url)}">{html.escape(link.filename)}</a> '
        f"({link.kind.upper()}, {_size(link.size)})</li>" for link in links)
    block = f'<h2>Tài liệu họp</h2><ul id="shared-documents">{items}</ul>'
    for part in message.walk():
        if part.get_content_maintype() != "text" or part.is_attachment():
            continue
        body = part.get_content()
        charset = "utf-8"
        if part.get_content_subtype() == "plain":
            part.set_content(body.rstrip("\n") + text, charset=charset)
        elif part.get_content_subtype() == "html":
            at = body.rfind("</body>")
            updated = body[:at] + block + body[at:] if at >= 0 else body + block
            part.set_content(updated, subtype="html", charset=charset)
