"""Vietnamese only in Vietnamese, English only in English: every page an administrator can open (every GET route
of the app that answers HTML, its ids filled from a small world) is rendered in both languages.

- A Vietnamese page fails on an English word of the catalogue's translations (a word of some ``msgstr`` that no
  ``msgid`` uses, e.g. "attendance", "fleet"): bracketed English such as "(live attendance)" is caught.
- An English page fails on a word with Vietnamese diacritics that is not data (the world's names and titles) or
  the language switcher's "Tiếng Việt".

Pages still known to mix languages are listed in :data:`KNOWN_MIXED` with the reason; the test fails when one of
them is fixed (so the list only shrinks).
"""

from __future__ import annotations

import html as html_lib
import re
import unicodedata
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from central.invitations.organisations import ORGANISATION_COLUMNS
from central.registration.imports import DELEGATE_COLUMNS

from .conftest import Api, Clock
from .staff import login, make_users
from .test_translations import CATALOGUE

KNOWN_MIXED: dict[str, str] = {}
"""Route rule -> why its English page still carries Vietnamese."""

SKIP_RULES = ("/static", "/api/", "/healthz", "/metrics", "/logout", "/su-kien",
              ".pdf", ".xlsx", ".csv", ".ics", ".png", "/stream", "/progress")
VI_LETTERS = set("ăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ")
WORD = re.compile(r"[^\W\d_]+")


def _catalogue() -> tuple[set[str], set[str]]:
    """(English-only words of the translations, Vietnamese words the translations quote on purpose: "Như trên",
    "Quảng Ngãi"), lower case."""
    with CATALOGUE.open("rb") as source:
        catalogue = read_po(source)
    source_words: set[str] = set()
    english: set[str] = set()
    for message in catalogue:
        if not message.id or not isinstance(message.id, str):
            continue
        source_words |= {w.lower() for w in WORD.findall(re.sub(r"%\(\w+\)s", " ", message.id))}
        if isinstance(message.string, str):
            english |= {w.lower() for w in WORD.findall(re.sub(r"%\(\w+\)s", " ", message.string))}
    quoted = {w for w in english if VI_LETTERS & set(w)}
    return {w for w in english - source_words if w.isascii() and len(w) >= 4}, quoted


def _visible_text(page: str) -> str:
    # Scripts, styles, machine data (<code>) and what people typed (<textarea>) are not the page's language.
    page = re.sub(r"(?is)<(script|style|code|textarea)\b.*?</\1>", " ", page)
    shown = r'(?i)\b(aria-label|placeholder|title|alt|data-confirm)="([^"]*)"'
    attributes = " ".join(m.group(2) for m in re.finditer(shown, page))
    text = re.sub(r"(?s)<[^>]+>", " ", page) + " " + attributes
    return unicodedata.normalize("NFC", html_lib.unescape(text))


def _without(text: str, data: set[str]) -> str:
    """``text`` without the world's data (names, titles: they are what people typed, in their language)."""
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    return text


@pytest.fixture
def pages(app: Flask, client: FlaskClient, api: Api, clock: Clock) -> dict[str, Any]:
    """A world with one of everything, and the URL of every HTML page for the administrator."""
    make_users(clock())
    meeting = api.meeting(title="Họp giao ban tháng 3")
    invitation = api.invitation(meeting["id"])
    delegate = api.register(invitation, name="Trần Văn Bình", position="Chuyên viên").get_json()
    api.gate("g1")
    values = {"meeting_id": meeting["id"], "invitation_id": invitation["id"], "number": invitation["number"],
              "delegate_id": delegate["id"], "org_id": invitation["organisation_id"], "user_id": 1, "venue_id": 1,
              "gate_id": "g1", "key_id": 1, "client_id": 1, "body_id": 1, "walkin_id": 1, "document_id": 1}
    urls: dict[str, str] = {}
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or any(part in rule.rule for part in SKIP_RULES):
            continue
        if not set(rule.arguments) <= set(values):
            continue
        url = rule.rule
        for name in rule.arguments:
            url = re.sub(rf"<(?:[^:<>]+:)?{name}>", str(values[name]), url)
        if rule.rule.startswith(("/registration/", "/dang-ky/")):
            url += f"?s={invitation['secret']}"
        urls[rule.rule] = url
    data = {"Họp giao ban tháng 3", "Trần Văn Bình", "Chuyên viên", "Sở Tài chính", "Phòng họp số 1", "Cổng chính",
            "Tiếng Việt", "Phó Giám đốc", "Nguyễn Văn An", "Lãnh đạo duyệt", "api-token",
            *ORGANISATION_COLUMNS.values(), *DELEGATE_COLUMNS.values()}  # import files' headers are Vietnamese
    return {"urls": urls, "data": data}


def _get(client: FlaskClient, url: str, lang: str) -> str | None:
    joiner = "&" if "?" in url else "?"
    response = client.get(f"{url}{joiner}lang={lang}")
    if response.status_code != 200 or response.mimetype != "text/html":
        return None
    return response.get_data(as_text=True)


def test_every_page_speaks_only_its_own_language(client: FlaskClient, pages: dict[str, Any]) -> None:
    english_words, quoted = _catalogue()
    assert {"attendance", "present", "expected"} <= english_words, "the word list is the catalogue's"
    login(client, "admin")
    problems: dict[str, list[str]] = {}
    rendered = 0
    for rule, url in sorted(pages["urls"].items()):
        vi, en = _get(client, url, "vi"), _get(client, url, "en")
        if vi is None or en is None:
            continue
        rendered += 1
        text = _without(_visible_text(vi), pages["data"])
        found = sorted({w for w in WORD.findall(text) if w.lower() in english_words})
        if found:
            problems.setdefault(rule, []).append(f"English on the Vietnamese page: {found[:12]}")
        text = _without(_visible_text(en), pages["data"])
        found = sorted({w for w in WORD.findall(text) if VI_LETTERS & set(w.lower()) and w.lower() not in quoted})
        if found:
            problems.setdefault(rule, []).append(f"Vietnamese on the English page: {found[:12]}")
    assert rendered >= 15, f"only {rendered} pages rendered: {sorted(pages['urls'])}"
    unexpected = {rule: found for rule, found in problems.items() if rule not in KNOWN_MIXED}
    assert unexpected == {}, "\n".join(f"{rule}: {found}" for rule, found in unexpected.items())
    fixed = set(KNOWN_MIXED) - set(problems)
    assert not fixed, f"no longer mixed, take them off KNOWN_MIXED: {sorted(fixed)}"
