"""An SMS that says what and where: the registration link is short (``/dk/<8 characters>``), so a long
Vietnamese title and venue fit in 160 ASCII characters, each abridged by whole words. The short token opens the
registration page like the long secret, counts as a guess when wrong, and is never logged; the e-mail's long link
(``/registration/<number>?secret=``) keeps working."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.invitations import shortlinks
from central.outbound.sms import compose_invitation_sms, to_sms_text
from protocols.logs import redact_secrets

from .conftest import AUTH, Api
from .staff import csrf

STARTS = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 08:00 in Vietnam
SHORT = "https://ubnd.quangngai.gov.vn/dk/Ab3dEf7H"
LONG_TITLES = [
    "Hội nghị trực tuyến tổng kết công tác năm 2026 và triển khai nhiệm vụ trọng tâm năm 2027 của Ủy ban nhân "
    "dân tỉnh Quảng Ngãi với các sở, ban, ngành và Ủy ban nhân dân các huyện, thị xã, thành phố",
    "Họp Ban Chỉ đạo thực hiện Chương trình mục tiêu quốc gia xây dựng nông thôn mới giai đoạn 2021–2025",
    "Hội nghị sơ kết 6 tháng đầu năm thực hiện Nghị quyết số 01/NQ-CP về nhiệm vụ, giải pháp chủ yếu "
    "thực hiện kế hoạch phát triển kinh tế - xã hội và dự toán ngân sách nhà nước năm 2026",
]
LONG_VENUES = [
    "Hội trường lớn tầng 3, Trụ sở Ủy ban nhân dân tỉnh, số 52 đường Hùng Vương, phường Trần Phú",
    "Phòng họp trực tuyến số 2",
]


def _abridged(shown: str, full: str) -> bool:
    """``shown`` is ``full`` made SMS-safe, or its first whole words followed by "..."."""
    words = to_sms_text(full).split()
    if not shown.endswith("..."):
        return shown == " ".join(words)
    kept = shown[:-3].split()
    cut = len(kept)  # the last kept word may lose its trailing punctuation ("tang 3," -> "tang 3...")
    return 0 < cut < len(words) and kept[:-1] == words[: cut - 1] and kept[-1] == words[cut - 1].rstrip(" ,;:.-/")


@pytest.mark.parametrize("title", LONG_TITLES)
@pytest.mark.parametrize("venue", LONG_VENUES)
def test_a_long_vietnamese_title_and_venue_both_fit_abridged_by_word(title: str, venue: str) -> None:
    text = compose_invitation_sms("125/GM-UBND", title, STARTS, venue, SHORT)
    assert text.isascii() and len(text) <= 160
    shown = re.fullmatch(r"UBND moi du hop: (.+), 08:00 27/11/2026 tai (.+) So 125/GM-UBND\. Dang ky: (\S+)", text)
    assert shown is not None, text
    title_shown, venue_shown, link = shown.groups()
    venue_shown = venue_shown if venue_shown.endswith("...") else venue_shown.removesuffix(".")
    assert link == SHORT
    assert _abridged(title_shown, title), title_shown
    assert _abridged(venue_shown, venue), venue_shown
    assert len(title_shown.split()) >= 5, "the title keeps the larger share: it says what the meeting is"
    assert len(venue_shown.split()) >= 3, "and the venue says where"


def test_short_tokens_are_eight_unambiguous_characters_and_differ() -> None:
    tokens = {shortlinks.new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    assert all(len(t) == 8 and shortlinks.is_token(t) and not set(t) & set("0O1lI") for t in tokens)
    assert len(shortlinks.ALPHABET) ** shortlinks.TOKEN_LENGTH > 10**14
    assert redact_secrets(f"text={SHORT} ok") == "text=https://ubnd.quangngai.gov.vn/dk/[redacted] ok"


def _sms_of(app: Flask, number: str) -> str:
    texts = [text for _phone, text in app.extensions["vaora"].sms_sender.sent if f"So {number}." in text]
    assert texts, f"no SMS for {number}"
    return texts[-1]


def test_the_sms_link_opens_the_registration_page_and_the_long_link_still_works(
    app: Flask, client: FlaskClient, api: Api, mail: Any
) -> None:
    meeting = api.meeting(title=LONG_TITLES[0], venue=LONG_VENUES[0])
    organisation = api.post("/api/v1/organisations", {"name": "Sở Tư pháp", "leader_phone": "0912345678",
                                                      "office_email": "vanthu@stp.example.vn"}).get_json()
    invitation = api.invitation(meeting["id"], organisation["id"])
    number = invitation["number"]
    sms = _sms_of(app, number)
    assert len(sms) <= 160 and "Hoi nghi truc tuyen tong ket" in sms and "tai Hoi truong lon tang 3" in sms
    token = re.search(r"/dk/([A-Za-z0-9]{8})$", sms).group(1)

    opened = client.get(f"/dk/{token}")
    assert opened.status_code == 302
    assert opened.headers["Location"] == f"/dang-ky/{number}?s={token}"
    page = client.get(opened.headers["Location"])
    assert page.status_code == 200 and LONG_TITLES[0] in page.text
    # The token works as the secret on every registration route: the organisation adds a delegate with it.
    added = client.post(f"/dang-ky/{number}/dai-bieu?s={token}", data={
        "csrf_token": csrf(page.text), "name": "Nguyễn Văn An", "position": "Phó Giám đốc",
        "email": "an.nguyen@stp.example.vn"})
    assert added.status_code in (302, 303)
    assert "Nguyễn Văn An" in client.get(f"/dang-ky/{number}?s={token}").text

    # The e-mail carries the long link, and it keeps working.
    long_link = api.received_link(number)
    assert "/registration/" in long_link.link and len(long_link.secret) > 8
    legacy = client.get(long_link.link.removeprefix("https://vaora.example.vn"))
    assert legacy.status_code == 302
    assert client.get(legacy.headers["Location"]).status_code == 200
    assert api.get(f"/api/v1/invitations/{invitation['id']}").get_data(as_text=True).count(token) == 0


def test_wrong_short_tokens_count_as_guesses_of_the_address(app: Flask, client: FlaskClient, api: Api) -> None:
    invitation = api.invitation()
    token = re.search(r"/dk/([A-Za-z0-9]{8})$", _sms_of(app, invitation["number"])).group(1)
    neighbour = {"REMOTE_ADDR": "203.0.113.7"}
    for guess in ("AAAAAAAA", "zzzzzzzz", "short", "x" * 200, "Ab3dEf7H", "23456789", "abcdefgh", "HHHHHHHH",
                  "kkkkkkkk", "mmmmmmmm"):
        assert client.get(f"/dk/{guess}", environ_base=neighbour).status_code == 404, guess
    refused = client.get(f"/dk/{token}", environ_base=neighbour)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert client.get(f"/dk/{token}", environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code == 302


def test_an_invitation_from_before_short_links_has_none_and_keeps_its_long_link(
    app: Flask, client: FlaskClient, api: Api
) -> None:
    from central.core.db import database
    from central.invitations.models import Invitation

    invitation = api.invitation(api.meeting()["id"], api.post("/api/v1/organisations", {
        "name": "Sở Nội vụ", "leader_phone": "0912345678", "office_email": "vt@snv.example.vn"}).get_json()["id"])
    with database.connection_context():
        Invitation.update(short_hash=None).where(Invitation.id == invitation["id"]).execute()  # as m0010 left it
    long_link = api.received_link(invitation["number"])
    assert client.get(long_link.link.removeprefix("https://vaora.example.vn")).status_code == 302
    assert client.get(f"/dang-ky/{invitation['number']}?s={long_link.secret}").status_code == 200
    assert api.client.get("/api/v1/invitations", headers=AUTH).status_code == 200
