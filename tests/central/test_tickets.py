"""Tickets as a delegate gets them: the PDF (Vietnamese text, a QR and a Code128 that scan), the .ics entry,
and the e-mail that carries both next to the inline QR."""

from __future__ import annotations

import io
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
import zxingcpp
from PIL import Image

from central.outbound.tickets.ics import CalendarEvent, build_ics, fold
from central.outbound.tickets.mail import build_delegate_mail, calendar_uid
from central.outbound.tickets.pdf import TicketData, render_ticket_pdf
from protocols.codes import format_compact, generate_compact

START = datetime(2025, 3, 10, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
NAME = "Nguyễn Thị Hoà"
TITLE = "Hội nghị tổng kết công tác cải cách hành chính năm 2024"


def ticket(code: str, scheme: str = "compact") -> TicketData:
    return TicketData(
        delegate_name=NAME,
        position="Phó Giám đốc",
        organisation="Sở Tư pháp",
        meeting_title=TITLE,
        starts_at=START,
        ends_at=START + timedelta(hours=3),
        venue="Hội trường A, tầng 3",
        invitation_number="125/TM-UBND",
        code=code,
        scheme=scheme,
    )


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "ticket.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def pdf_barcodes(pdf: bytes, tmp_path: Path) -> dict[str, str]:
    """Render the page to PNG (as a printer would) and read every barcode on it: format -> text."""
    path = tmp_path / "ticket.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "200", "-singlefile", str(path), str(tmp_path / "page")], check=True
    )
    image = Image.open(tmp_path / "page.png")
    return {result.format.name: result.text for result in zxingcpp.read_barcodes(image)}


def test_compact_ticket_shows_vietnamese_text_and_its_qr_and_code128_scan(tmp_path: Path) -> None:
    code = generate_compact()
    pdf = render_ticket_pdf(ticket(code))
    assert pdf.startswith(b"%PDF-")

    text = pdf_text(pdf, tmp_path)
    for expected in (
        NAME,
        "Phó Giám đốc",
        "Sở Tư pháp",
        "Hội nghị tổng kết công tác",
        "Hội trường A",
        "125/TM-UBND",
        "08:00 - 11:00 ngày 10/03/2025",
        format_compact(code),
        "THẺ DỰ HỌP",
    ):
        assert expected in text, f"{expected!r} missing from the PDF text:\n{text}"

    found = pdf_barcodes(pdf, tmp_path)
    assert found.get("QRCode") == code
    assert found.get("Code128") == code


def test_signed_ticket_has_the_qr_but_no_code128(tmp_path: Path) -> None:
    code = "VR1:" + "A" * 120  # shape only: the ticket does not verify codes
    found = pdf_barcodes(render_ticket_pdf(ticket(code, scheme="signed")), tmp_path)
    assert found == {"QRCode": code}


def test_ics_parses_with_the_meeting_times_in_utc_and_a_stable_uid() -> None:
    def event(stamp: datetime) -> CalendarEvent:
        return CalendarEvent(
            uid=calendar_uid(42, "vanphong@ubnd.example.vn"),
            summary=TITLE,
            starts_at=START,
            ends_at=START + timedelta(hours=3),
            location="Hội trường A, tầng 3; cổng số 2",
            description="Dòng 1\nDòng 2, có dấu phẩy; và chấm phẩy \\ gạch",
            stamp=stamp,
        )

    first, second = build_ics(event(START - timedelta(days=3))), build_ics(event(START - timedelta(days=1)))
    for raw in (first, second):
        lines = raw.split(b"\r\n")
        assert lines[-1] == b"" and all(len(line) <= 75 for line in lines), "CRLF lines of at most 75 octets"
    calendar = icalendar.Calendar.from_ical(first)
    (vevent,) = calendar.walk("VEVENT")
    assert vevent.decoded("DTSTART") == START
    assert vevent.decoded("DTEND") == START + timedelta(hours=3)
    assert str(vevent["SUMMARY"]) == TITLE
    assert str(vevent["LOCATION"]) == "Hội trường A, tầng 3; cổng số 2"
    assert str(vevent["DESCRIPTION"]) == "Dòng 1\nDòng 2, có dấu phẩy; và chấm phẩy \\ gạch"
    (again,) = icalendar.Calendar.from_ical(second).walk("VEVENT")
    assert str(vevent["UID"]) == str(again["UID"]) == "vaora-delegate-42@ubnd.example.vn"


def test_fold_never_splits_a_vietnamese_character() -> None:
    line = "SUMMARY:" + "Nguyễn Thị Hoà " * 20
    folded = fold(line)
    parts = folded.split("\r\n")
    assert len(parts) > 1
    assert all(len(part.encode("utf-8")) <= 75 for part in parts)
    assert "".join(part[1:] if i else part for i, part in enumerate(parts)) == line


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        build_ics(CalendarEvent("u", "s", datetime(2025, 3, 10), START, "l", "d", START))


class _Row:
    """The attributes of the models a mail is built from (the builder only reads them)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


def test_delegate_mail_carries_inline_qr_pdf_ticket_and_calendar_entry(tmp_path: Path) -> None:
    code = generate_compact()
    meeting = _Row(
        title=TITLE,
        starts_at=START,
        ends_at=START + timedelta(hours=3),
        venue="Hội trường A",
        scheme="compact",
    )
    invitation = _Row(number="125/TM-UBND", organisation=_Row(name="Sở Tư pháp"))
    delegate = _Row(
        id=7,
        name=NAME,
        position="Phó Giám đốc",
        email="hoa@stp.example.vn",
        code=code,
        meeting=meeting,
        invitation=invitation,
    )
    message = build_delegate_mail(
        delegate, mail_from="vanphong@ubnd.example.vn", now=START - timedelta(days=2)
    )

    assert message["To"] == "hoa@stp.example.vn"
    assert TITLE in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert NAME in text and format_compact(code) in text
    inline = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert len(inline) == 1
    assert [
        r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(inline[0].get_payload(decode=True))))
    ] == [code]

    attachments = {part.get_content_type(): part for part in message.iter_attachments()}
    assert set(attachments) == {"application/pdf", "text/calendar"}
    assert attachments["application/pdf"].get_filename() == "the-du-hop-7.pdf"
    assert NAME in pdf_text(attachments["application/pdf"].get_payload(decode=True), tmp_path)
    (vevent,) = icalendar.Calendar.from_ical(attachments["text/calendar"].get_payload(decode=True)).walk(
        "VEVENT"
    )
    assert vevent.decoded("DTSTART") == START
    assert str(vevent["UID"]) == "vaora-delegate-7@ubnd.example.vn"
