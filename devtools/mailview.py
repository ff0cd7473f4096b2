"""The demo's mailbox page ("Hộp thư demo"): the mail central sent, read from the mail catcher's Maildir.

``/`` lists the messages, newest first (time, to, subject, attachments); ``/thu/<key>`` shows one: its headers,
its HTML body (in a sandboxed frame, inline ``cid:`` images such as a delegate's QR resolved), its text body and
its attachments, images shown and every part downloadable at ``/thu/<key>/phan/<n>``.

It is development tooling, not part of central: it lives in ``devtools`` (not in the installed distribution,
never imported by central), listens on a loopback address only (:class:`MailView` refuses another), and reads
only the Maildir it was given. The server is the standard library's ``wsgiref`` in a thread: one reader, one
machine.

    python -m devtools.mailview var/demo/mail [--port 8025]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import html
import ipaddress
import mailbox
import re
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

Start = Callable[[str, list[tuple[str, str]]], Any]
_PAGE = """<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:1rem auto;max-width:60rem;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ccc;padding:.4rem;text-align:left}}
iframe{{width:100%;height:36rem;border:1px solid #999}}img.part{{max-width:16rem;border:1px solid #ccc}}
pre{{white-space:pre-wrap;background:#f6f6f6;padding:.5rem}}</style></head><body>{body}</body></html>"""
_CID = re.compile(r"""(["'])cid:([^"']+)\1""")


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


class MailView:
    """A WSGI app over one Maildir; :meth:`start` serves it on ``host``:``port`` in a thread."""

    def __init__(self, maildir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the demo mailbox serves only a loopback address, not {host}")
        self.maildir = Path(maildir)
        self.host = host
        self.port = port
        self._server: WSGIServer | None = None

    # ----- reading

    def _box(self) -> mailbox.Maildir:
        return mailbox.Maildir(str(self.maildir), create=True)

    def messages(self) -> list[tuple[str, EmailMessage, float]]:
        """(key, message, delivery time) of every message, newest first."""
        box = self._box()
        found = []
        for key in box.iterkeys():
            entry = box.get_message(key)
            found.append((key, _parse(entry.as_bytes()), entry.get_date()))
        return sorted(found, key=lambda item: item[2], reverse=True)

    def message(self, key: str) -> EmailMessage | None:
        """The message stored under ``key`` (only keys the Maildir lists), or None."""
        box = self._box()
        if key not in box:
            return None
        return _parse(box.get_bytes(key))

    # ----- pages

    def __call__(self, environ: dict[str, Any], start: Start) -> Iterable[bytes]:
        path = unquote(environ.get("PATH_INFO", "/"))
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return self._answer(start, "405 Method Not Allowed", "text/plain", b"GET only")
        if path == "/":
            return self._answer(start, "200 OK", "text/html; charset=utf-8", self._list())
        match = re.fullmatch(r"/thu/([^/]+)(?:/(phan|cid)/(.+))?", path)
        message = self.message(match.group(1)) if match else None
        if match is None or message is None:
            return self._answer(start, "404 Not Found", "text/plain; charset=utf-8", "Không có thư này".encode())
        if match.group(2) is None:
            return self._answer(start, "200 OK", "text/html; charset=utf-8", self._show(match.group(1), message))
        part = self._part(message, match.group(2), match.group(3))
        if part is None:
            return self._answer(start, "404 Not Found", "text/plain; charset=utf-8", "Không có phần này".encode())
        data = part.get_payload(decode=True) or b""
        return self._answer(start, "200 OK", part.get_content_type(), data,
                            disposition=part.get_filename())

    @staticmethod
    def _answer(
        start: Start, status: str, content_type: str, body: bytes, disposition: str | None = None
    ) -> list[bytes]:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                   ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")]
        if disposition:
            headers.append(("Content-Disposition", f"inline; filename*=UTF-8''{quote(disposition)}"))
        start(status, headers)
        return [body]

    def _list(self) -> bytes:
        rows = []
        for key, message, delivered in self.messages():
            attachments = sum(1 for _ in message.iter_attachments())
            when = datetime.fromtimestamp(delivered, UTC).astimezone().strftime("%H:%M:%S %d/%m/%Y")
            rows.append(
                f'<tr><td>{when}</td><td>{html.escape(str(message.get("X-RcptTo") or message.get("To", "")))}</td>'
                f'<td><a href="/thu/{quote(key)}">'
                f'{html.escape(str(message.get("Subject", "(không tiêu đề)")))}</a></td>'
                f"<td>{attachments}</td></tr>"
            )
        table = ("<table><thead><tr><th>Lúc nhận</th><th>Gửi tới</th><th>Tiêu đề</th><th>Tệp đính kèm</th></tr>"
                 f"</thead><tbody>{''.join(rows)}</tbody></table>") if rows else "<p>Chưa có thư nào.</p>"
        body = (f"<h1>Hộp thư demo</h1><p>Thư central đã gửi, lưu tại <code>{html.escape(str(self.maildir))}"
                f"</code> (Maildir). Tải lại trang để xem thư mới.</p>{table}")
        return _PAGE.format(title="Hộp thư demo", body=body).encode()

    @staticmethod
    def _parts(message: EmailMessage) -> list[EmailMessage]:
        return [part for part in message.walk() if not part.is_multipart()]

    def _part(self, message: EmailMessage, how: str, which: str) -> EmailMessage | None:
        parts = self._parts(message)
        if how == "phan":
            return parts[int(which)] if which.isdigit() and int(which) < len(parts) else None
        return next((p for p in parts if str(p.get("Content-ID", "")).strip("<>") == which), None)

    def _show(self, key: str, message: EmailMessage) -> bytes:
        base = f"/thu/{quote(key)}"
        facts = "".join(
            f"<dt>{label}</dt><dd>{html.escape(str(message.get(name, '')))}</dd>"
            for label, name in (("Từ", "From"), ("Tới", "To"), ("Ngày", "Date"), ("Tiêu đề", "Subject"))
        )
        sections = [f'<p><a href="/">← Hộp thư</a></p><h1>{html.escape(str(message.get("Subject", "")))}</h1>'
                    f"<dl>{facts}</dl>"]
        html_body = message.get_body(("html",))
        if html_body is not None:
            content = _CID.sub(lambda m: f'{m.group(1)}{base}/cid/{quote(m.group(2))}{m.group(1)}',
                               html_body.get_content())
            sections.append(f'<h2>Nội dung (HTML)</h2><iframe id="html-body" sandbox title="Nội dung thư" '
                            f'srcdoc="{html.escape(content, quote=True)}"></iframe>')
        text_body = message.get_body(("plain",))
        if text_body is not None:
            sections.append('<h2>Nội dung (văn bản)</h2>'
                            f'<pre id="text-body">{html.escape(text_body.get_content())}</pre>')
        items = []
        for index, part in enumerate(self._parts(message)):
            if part in (html_body, text_body):
                continue
            name = part.get_filename() or str(part.get("Content-ID", "")).strip("<>") or f"phần {index}"
            size = len(part.get_payload(decode=True) or b"")
            link = f"{base}/phan/{index}"
            is_image = part.get_content_maintype() == "image"
            shown = f'<br><img class="part" src="{link}" alt="{html.escape(name)}">' if is_image else ""
            items.append(f'<li><a href="{link}">{html.escape(name)}</a> ({part.get_content_type()}, '
                         f"{size:,} byte){shown}</li>")
        if items:
            sections.append(f'<h2>Tệp đính kèm và hình</h2><ul id="parts">{"".join(items)}</ul>')
        return _PAGE.format(title=html.escape(str(message.get("Subject", "Thư"))), body="".join(sections)).encode()

    # ----- serving

    def start(self) -> MailView:
        """Serve in a daemon thread; :attr:`port` is the bound port afterwards."""

        class _Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = make_server(self.host, self.port, self, handler_class=_Quiet)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, name="mailview", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        """The list page's address."""
        return f"http://{self.host}:{self.port}/"

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def main(argv: list[str] | None = None) -> int:
    """Serve a Maildir until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m devtools.mailview", description=__doc__.splitlines()[0])
    parser.add_argument("maildir", type=Path)
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args(argv)
    view = MailView(args.maildir, port=args.port).start()
    print(f"Hộp thư demo: {view.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        view.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
