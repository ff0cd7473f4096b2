"""The demo's mailbox: mail caught by the demo is kept as a Maildir and served as pages (list, HTML body with its
inline QR, text body, attachments) by ``devtools.mailview`` — development tooling that production never
reaches: it is not in the installed distribution, central never imports it, no central route serves mail, and it
binds loopback addresses only."""

from __future__ import annotations

import ast
import mailbox
import smtplib
import tomllib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
import segno
from flask.testing import FlaskClient

from devtools.mailcatcher import MailCatcher
from devtools.mailview import MailView

REPO = Path(__file__).resolve().parents[2]


def _code_mail() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"] = "vanphong@ubnd.demo.vn", "hoa.nguyen@stp.demo.vn"
    message["Subject"] = "Mã vào cổng: Họp giao ban"
    message.set_content("Mã của chị: 7KUP-QH7X-6NE6-TR")
    message.add_alternative('<html><body><p>Mã của chị</p><img src="cid:qr-code" alt="QR"></body></html>',
                            subtype="html")
    png = segno.make("7KUPQH7X6NE6TR").png_data_uri(scale=4)
    import base64

    message.get_payload()[1].add_related(base64.b64decode(png.split(",", 1)[1]), "image", "png", cid="<qr-code>")
    message.add_attachment(b"%PDF-1.4\n%%EOF\n", maintype="application", subtype="pdf", filename="vé mời.pdf")
    return message


@pytest.fixture
def served(tmp_path: Path) -> Any:
    """A catcher writing to a Maildir, and the mailbox page over it."""
    with MailCatcher(maildir=tmp_path / "mail") as catcher:
        view = MailView(tmp_path / "mail").start()
        try:
            yield catcher, view
        finally:
            view.stop()


def test_caught_mail_is_a_maildir_on_disk_and_readable_as_pages(served: Any, tmp_path: Path) -> None:
    catcher, view = served
    assert requests.get(view.url, timeout=10).text.count("Chưa có thư nào.") == 1
    with smtplib.SMTP(catcher.host, catcher.port) as smtp:
        smtp.send_message(_code_mail())
    catcher.wait_for(1)
    (key,) = mailbox.Maildir(str(tmp_path / "mail"), create=False).keys()

    listing = requests.get(view.url, timeout=10)
    assert listing.headers["Content-Type"].startswith("text/html")
    assert f'href="/thu/{key}"' in listing.text and "Mã vào cổng: Họp giao ban" in listing.text
    shown = requests.get(f"{view.url}thu/{key}", timeout=10).text
    assert "Mã của chị: 7KUP-QH7X-6NE6-TR" in shown  # the text body
    assert f"src=&quot;/thu/{key}/cid/qr-code&quot;" in shown  # the HTML body's inline QR resolved
    assert "vé mời.pdf" in shown and '<img class="part"' in shown
    qr = requests.get(f"{view.url}thu/{key}/cid/qr-code", timeout=10)
    assert qr.headers["Content-Type"] == "image/png" and qr.content.startswith(b"\x89PNG")
    assert requests.get(f"{view.url}thu/{key}/phan/99", timeout=10).status_code == 404

    # The mail outlives the catcher: a new page over the same Maildir still shows it.
    catcher.stop()
    later = MailView(tmp_path / "mail").start()
    try:
        assert "Mã vào cổng: Họp giao ban" in requests.get(later.url, timeout=10).text
    finally:
        later.stop()


@pytest.mark.parametrize("path", ["/thu/..%2f..%2fetc%2fpasswd", "/thu/nope", "/thu/../../etc/passwd", "/x"])
def test_only_the_maildirs_own_messages_are_served(served: Any, path: str) -> None:
    _catcher, view = served
    assert requests.get(f"{view.url.rstrip('/')}{path}", timeout=10).status_code == 404
    assert requests.post(view.url, timeout=10).status_code == 405


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "203.0.113.5", "::"])
def test_the_mailbox_page_refuses_any_address_but_loopback(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        MailView(tmp_path, host=host)


def test_production_never_serves_caught_mail(client: FlaskClient) -> None:
    """Not installed (the distribution packages gate, central and protocols only), never imported by central,
    and no route of central answers for it."""
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert "devtools" not in " ".join(packages["include"])
    for path in (REPO / "central").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n.split(".")[0] == "devtools" for n in names), path
    for url in ("/", "/thu/1", "/hop-thu/", "/mail/"):
        answer = client.get(url)
        assert "Hộp thư demo" not in answer.get_data(as_text=True)
    assert client.get("/thu/1").status_code == 404
