"""The leader's approval of an invitation over HTTP, and the registration link as the organisation receives it.

An invitation is created as a draft; only an approver's approval numbers it and sends it by e-mail and SMS.
The demo and the end-to-end tests therefore log in as an approver (:func:`approve`) and then read the link
(number and secret) out of the e-mail or SMS that reached the organisation (:func:`registration_link`), the
way a real organisation gets it: no response to staff carries the secret.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote

import requests

_LINK = re.compile(r"(?P<link>https?://[^\s\"'<>]+/registration/(?P<number>[^\s?\"'<>]+)\?secret=(?P<secret>[^\s&\"'<>]+))")
_SHORT = re.compile(r"So (?P<number>\S+?)\. Dang ky: (?P<link>https?://\S+/dk/(?P<secret>[A-Za-z0-9]{8}))")
"""An SMS's short link: the number is the text's ``So <number>.``, the token opens the invitation like its secret."""
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@dataclass(frozen=True)
class RegistrationLink:
    """A registration link found in a message: the whole link, the invitation number and its secret."""

    link: str
    number: str
    secret: str


def links_in(text: str) -> list[RegistrationLink]:
    """Every registration link in ``text`` (an SMS or a mail body), in order: the long ones
    (``/registration/<number>?secret=``) and an SMS's short one (``/dk/<token>``, the token as the secret)."""
    found = [(m.start(), RegistrationLink(m["link"], unquote(m["number"]), unquote(m["secret"])))
             for m in _LINK.finditer(text)]
    found += [(m.start(), RegistrationLink(m["link"], m["number"], m["secret"])) for m in _SHORT.finditer(text)]
    return [link for _, link in sorted(found, key=lambda pair: pair[0])]


def mail_text(message: EmailMessage) -> str:
    """The plain-text and HTML bodies of a mail, joined (attachments left out)."""
    parts = []
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html") and not part.get_filename():
            content = part.get_content()
            parts.append(content if isinstance(content, str) else "")
    return "\n".join(parts)


def registration_link(texts: list[str], number: str) -> RegistrationLink:
    """The newest link to invitation ``number`` among ``texts`` (SMS texts or mail bodies, oldest first)."""
    for text in reversed(texts):
        for found in reversed(links_in(text)):
            if found.number == number:
                return found
    raise LookupError(f"no registration link for invitation {number} in {len(texts)} message(s)")


def wait_for_registration_link(read_texts: Callable[[], list[str]], number: str, *,
                               timeout: float = 30.0) -> RegistrationLink:
    """:func:`registration_link` among what ``read_texts`` returns, polled until the message has been sent (an
    approval's e-mail and SMS go out from a worker thread or process, after the approval's answer)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return registration_link(read_texts(), number)
        except LookupError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.05)


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    if match is None:
        raise RuntimeError("no CSRF token in the page")
    return match.group(1)


def log_in(base_url: str, username: str, password: str, *, timeout: float = 30.0) -> requests.Session:
    """A session logged in through the login form (raises when the login is refused)."""
    session = requests.Session()
    page = session.get(f"{base_url}/login", timeout=timeout)
    answer = session.post(f"{base_url}/login", timeout=timeout, allow_redirects=False,
                          data={"username": username, "password": password, "csrf_token": _csrf(page.text)})
    if answer.status_code != 302 or "/login" in answer.headers.get("Location", ""):
        raise RuntimeError(f"login as {username} refused ({answer.status_code})")
    return session


def post_as(session: requests.Session, base_url: str, path: str, body: dict[str, Any] | None = None, *,
            timeout: float = 30.0) -> requests.Response:
    """POST to central's JSON API as the logged-in user of ``session`` (with the page's CSRF token)."""
    token = _csrf(session.get(f"{base_url}/invitations/", timeout=timeout).text)
    return session.post(f"{base_url}{path}", json=body, headers={"X-CSRFToken": token}, timeout=timeout)


def approve(session: requests.Session, base_url: str, invitation_id: int, *, timeout: float = 30.0) -> dict[str, Any]:
    """Approve a draft as the logged-in approver through the JSON API; return the approved invitation."""
    answer = post_as(session, base_url, f"/api/v1/invitations/{invitation_id}/approve", timeout=timeout)
    if answer.status_code != 200:
        raise RuntimeError(f"approving invitation {invitation_id}: {answer.status_code} {answer.text}")
    body: dict[str, Any] = answer.json()
    return body
