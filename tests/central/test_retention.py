"""Retention (``central.retention``): with the clock frozen at chosen moments after a meeting, the purge anonymises
or deletes exactly what is past each retention and keeps the rest, the meeting's statistics and attendance list
keep their totals, a dry run changes nothing; the office's subject export holds one person's data and no one
else's, the erasure anonymises that person only; the page is for administrators."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.attendance.exports import build_attendance_list
from central.attendance.stats import meeting_statistics
from central.cli import main
from central.config import CentralConfig, ConfigError
from central.core.audit import audit
from central.core.db import database
from central.core.models import AuditEntry, Change
from central.core.states import JobState
from central.desk.models import Walkin
from central.desk.walkins import hash_id_number
from central.gates.models import CheckIn, Gate
from central.invitations.models import Invitation, Organisation
from central.meetings.models import Meeting
from central.outbound.models import MailJob
from central.registration.models import Delegate
from central.retention import subjects
from central.retention.anonymise import ANONYMOUS_NAME
from central.retention.policy import DataKind, RetentionPolicy, cutoff
from central.retention.purge import purge

from .conftest import START
from .staff import csrf, login, make_users

END = START + timedelta(hours=3)
POLICY = RetentionPolicy()  # the defaults: delegates 365 days, walk-ins 90, check-ins 730, audit 730, outbound 30
AN_CCCD = "001099012345"
BINH_CCCD = "079088001122"


def _delegate(meeting: Meeting, invitation: Invitation, name: str, email: str, phone: str | None,
              position: str = "Phó Giám đốc") -> Delegate:
    return Delegate.create(
        invitation=invitation, meeting=meeting, name=name, position=position, email=email, phone=phone,
        code=f"CODE{uuid.uuid4().hex[:8]}", code_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        credential=f"c:{uuid.uuid4()}", valid_from=START - timedelta(hours=2), valid_until=END,
        mail_status="sent", created_at=START - timedelta(days=5))


def _checkin(meeting: Meeting, delegate: Delegate | None, gate: Gate | None, at: datetime, *, allowed: bool = True,
             outcome: str = "entered", direction: str = "in", manual: bool = False, note: str | None = None) -> None:
    CheckIn.create(
        checkin_id=uuid.uuid4(), gate=gate, meeting=meeting, delegate=delegate, allowed=allowed,
        reason="ok" if allowed else "already_inside", outcome=outcome, direction=direction, scheme="compact",
        scanned_at=at, completed_at=at, received_at=at, manual=manual,
        credential=delegate.credential if delegate else "unknown-hash", note=note,
        operator="to-chuc" if manual else None)


def seed(app: Flask) -> dict[str, Any]:
    """A meeting on 10/03/2025 08:00-11:00 with two organisations: An (on time, also refused once and went out
    and in again), Bình (late), Chi (absent, her code mail failed), Dũng marked present by hand, and a walk-in
    Hoa admitted with a one-day code; plus an unknown code scanned, audit entries and outbound jobs."""
    meeting = Meeting.create(title="Họp giao ban quý I", starts_at=START, ends_at=END, venue="Phòng họp 1",
                             site_id="hq", created_at=START - timedelta(days=10))
    finance = Organisation.create(name="Sở Tài chính")
    health = Organisation.create(name="Sở Y tế")
    inv1 = Invitation.create(meeting=meeting, organisation=finance, number="1/TM-UBND", year=2025, seq=1,
                             status="sent", created_at=START - timedelta(days=9))
    inv2 = Invitation.create(meeting=meeting, organisation=health, number="2/TM-UBND", year=2025, seq=2,
                             status="sent", created_at=START - timedelta(days=9))
    an = _delegate(meeting, inv1, "Nguyễn Văn An", "an.nguyen@example.vn", "+84912345678")
    binh = _delegate(meeting, inv1, "Trần Thị Bình", "binh.tran@example.vn", "+84987654321")
    chi = _delegate(meeting, inv2, "Lê Thị Chi", "chi.le@example.vn", None)
    dung = _delegate(meeting, inv2, "Phạm Văn Dũng", "dung.pham@example.vn", "+84901234567")
    hoa_code = _delegate(meeting, inv2, "Võ Thị Hoa", "", None, position="Khách")
    gate = Gate.create(gate_id="g1", site_id="hq", token_hash="0" * 64)
    _checkin(meeting, an, gate, START - timedelta(minutes=20))
    _checkin(meeting, an, gate, START - timedelta(minutes=10), allowed=False, outcome="refused")
    _checkin(meeting, an, gate, START + timedelta(minutes=30), direction="out", outcome="entered")
    _checkin(meeting, an, gate, START + timedelta(minutes=40))
    _checkin(meeting, binh, gate, START + timedelta(minutes=15))
    _checkin(meeting, dung, None, START + timedelta(minutes=5), manual=True, note="Quên mã, đã đối chiếu CCCD")
    _checkin(meeting, hoa_code, gate, START + timedelta(minutes=25))
    CheckIn.create(checkin_id=uuid.uuid4(), gate=gate, meeting=None, delegate=None, allowed=False,
                   reason="unknown_code", outcome="refused", direction="in", scanned_at=START, received_at=START,
                   credential="ffff")
    secret = str(app.secret_key)
    hoa = Walkin.create(meeting=meeting, invitation=inv2, full_name="Võ Thị Hoa", date_of_birth=date(1990, 5, 17),
                        sex="Nữ", id_hash=hash_id_number(AN_CCCD, secret), id_masked="********2345",
                        status="admitted", created_by="baove", created_at=START, decided_by="baove",
                        decided_at=START, decision_note="Thay thế đại biểu", delegate=hoa_code)
    for person in (an, binh, chi, dung):
        audit("to-chuc", "delegate.register", f"delegate:{person.id}", {"name": person.name},
              now=START - timedelta(days=5))
        MailJob.create(kind="delegate_code", ref_id=person.id, recipient=person.email,
                       status=JobState.FAILED if person is chi else JobState.SENT, next_attempt_at=START,
                       created_at=START - timedelta(days=5), message=b"ma so " + person.code.encode())
    audit("baove", "walkin.register", f"walkin:{hoa.id}", {"name": hoa.full_name, "id": hoa.id_masked}, now=START)
    MailJob.create(kind="message", recipient="an.nguyen@example.vn", status=JobState.QUEUED,
                   next_attempt_at=START, created_at=START - timedelta(days=1))
    return {"meeting": meeting, "an": an, "binh": binh, "chi": chi, "dung": dung, "hoa": hoa, "hoa_code": hoa_code}


def totals(meeting: Meeting) -> tuple[int, int, int, int, int]:
    """(expected, present, late, manual, rows on the attendance list) of ``meeting``."""
    stats = meeting_statistics(meeting)
    listed = build_attendance_list(meeting)
    assert listed.present == stats.present
    return stats.expected, stats.present, stats.late, stats.manual_entries, len(listed.rows)


def names() -> set[str]:
    return {d.name for d in Delegate.select()}


@pytest.fixture
def seeded(app: Flask, db: None) -> dict[str, Any]:
    with database.atomic():
        return seed(app)


def test_the_cutoffs_count_back_from_now() -> None:
    now = datetime(2027, 1, 1, tzinfo=UTC)
    assert cutoff(POLICY, DataKind.DELEGATE_CONTACT, now) == now - timedelta(days=365)
    assert cutoff(POLICY, DataKind.WALKIN, now) == now - timedelta(days=90)
    assert cutoff(RetentionPolicy(checkin_days=10), DataKind.CHECKIN, now) == now - timedelta(days=10)


def test_the_retention_settings_are_read_and_checked() -> None:
    config = CentralConfig.from_mapping({"VAORA_RETENTION_WALKIN_DAYS": "30"})
    assert RetentionPolicy.from_config(config) == RetentionPolicy(walkin_days=30)
    with pytest.raises(ConfigError) as raised:
        CentralConfig.from_mapping({"VAORA_RETENTION_DELEGATE_DAYS": "0", "VAORA_RETENTION_AUDIT_DAYS": "x"})
    assert set(raised.value.errors) == {"VAORA_RETENTION_DELEGATE_DAYS", "VAORA_RETENTION_AUDIT_DAYS"}


def test_each_kind_goes_at_its_own_retention_and_the_totals_stay(seeded: dict[str, Any]) -> None:
    meeting = seeded["meeting"]
    before = totals(meeting)
    assert before == (5, 4, 3, 1, 5)  # An on time; Bình, Dũng (by hand) and Hoa late; Chi absent
    checkins = CheckIn.select().count()

    # 20 days after the meeting: nothing is past its retention (the outbound jobs are 25 days old, 30 are kept).
    report = purge(POLICY, END + timedelta(days=20))
    assert set(report.counts.values()) == {0}
    # 26 days (the jobs are 31 days old): the finished e-mail jobs (addresses, codes) go; the queued one stays.
    report = purge(POLICY, END + timedelta(days=26))
    assert report.counts["outbound_jobs_deleted"] == 4
    assert [j.status for j in MailJob.select()] == [JobState.QUEUED]
    assert sum(report.counts.values()) == 4

    # 89 days: walk-ins stay; 91 days: Hoa's name, birth date and ID hash go, and so does her one-day code's name.
    assert purge(POLICY, END + timedelta(days=89)).counts["walkins_anonymised"] == 0
    report = purge(POLICY, END + timedelta(days=91))
    assert report.counts["walkins_anonymised"] == 1
    hoa = Walkin.get_by_id(seeded["hoa"].id)
    assert (hoa.full_name, hoa.date_of_birth, hoa.id_hash, hoa.id_masked, hoa.sex, hoa.decision_note) == (
        ANONYMOUS_NAME, date(1900, 1, 1), "", "", "", "")
    assert hoa.status == "admitted"
    assert names() == {"Nguyễn Văn An", "Trần Thị Bình", "Lê Thị Chi", "Phạm Văn Dũng", ANONYMOUS_NAME}
    assert totals(meeting) == before

    # 364 days: delegates stay; 366 days: names, e-mail, phone and codes go.
    assert purge(POLICY, END + timedelta(days=364)).counts["delegates_anonymised"] == 0
    report = purge(POLICY, END + timedelta(days=366))
    assert report.counts["delegates_anonymised"] == 4
    for delegate in Delegate.select():
        assert (delegate.name, delegate.email, delegate.phone, delegate.code, delegate.position) == (
            ANONYMOUS_NAME, "", None, "", "")
    assert totals(meeting) == before
    assert CheckIn.select().count() == checkins  # check-ins are kept for two years
    assert AuditEntry.select().where(AuditEntry.details.contains("Nguyễn Văn An")).count() == 1

    # 720 days: check-ins and audit details stay; 731 days: only the counted entries stay, without credential or
    # note; the refusal, the exit, An's second entry and the unknown code's scan are deleted.
    report = purge(POLICY, END + timedelta(days=720))
    assert report.counts["checkins_deleted"] == report.counts["audit_details_blanked"] == 0
    report = purge(POLICY, END + timedelta(days=731))
    assert report.counts["checkins_deleted"] == 4
    assert report.counts["checkins_anonymised"] == 4
    assert CheckIn.select().count() == 4
    assert CheckIn.select().where(CheckIn.credential.is_null(False) | CheckIn.note.is_null(False)
                                  | CheckIn.operator.is_null(False)).count() == 0
    assert totals(meeting) == before
    assert not AuditEntry.select().where(AuditEntry.details.contains("Nguyễn")
                                         | AuditEntry.details.contains("Hoa")).exists()
    assert AuditEntry.select().where(AuditEntry.action == "delegate.register").count() == 4  # who/what/when stay

    # Each real run is audited with its counts; running again changes nothing more.
    runs = AuditEntry.select().where(AuditEntry.action == "retention.purge").count()
    assert runs == 8
    assert set(purge(POLICY, END + timedelta(days=731)).counts.values()) == {0}


def test_a_dry_run_counts_the_same_and_changes_nothing(seeded: dict[str, Any]) -> None:
    def snapshot() -> list[Any]:
        return [sorted((d.id, d.name, d.email, d.phone, d.code) for d in Delegate.select()),
                sorted((w.id, w.full_name, w.id_hash) for w in Walkin.select()),
                sorted((str(c.checkin_id), c.credential, c.note) for c in CheckIn.select()),
                sorted((e.id, e.details) for e in AuditEntry.select()),
                sorted(j.id for j in MailJob.select())]

    now = END + timedelta(days=1000)
    kept = snapshot()
    dry = purge(POLICY, now, dry_run=True)
    assert snapshot() == kept
    assert dry.counts["delegates_anonymised"] == 4
    real = purge(POLICY, now)
    assert real.counts == dry.counts
    assert snapshot() != kept


def test_a_meeting_that_ended_recently_keeps_everything(seeded: dict[str, Any]) -> None:
    meeting = seeded["meeting"]
    Meeting.update(ends_at=END + timedelta(days=800)).where(Meeting.id == meeting.id).execute()
    purge(POLICY, END + timedelta(days=801))
    assert "Nguyễn Văn An" in names()
    assert Walkin.get_by_id(seeded["hoa"].id).full_name == "Võ Thị Hoa"


def test_the_subject_export_holds_that_person_and_no_one_else(app: Flask, seeded: dict[str, Any]) -> None:
    query = subjects.parse_query({"email": "an.nguyen@example.vn"})
    found = subjects.find_subject(query, secret=str(app.secret_key))
    document = subjects.export_subject(found, "admin", now=END)
    text = json.dumps(document, ensure_ascii=False)
    assert [d["name"] for d in document["delegates"]] == ["Nguyễn Văn An"]
    assert document["delegates"][0]["phone"] == "+84912345678"
    assert len(document["checkins"]) == 4
    assert {m["kind"] for m in document["messages"]} == {"delegate_code", "message"}
    assert [e["action"] for e in document["audit"]] == ["delegate.register"]
    for other in ("Bình", "Chi", "Dũng", "Hoa", "binh.tran", "+84987654321"):
        assert other not in text
    exported = AuditEntry.get(AuditEntry.action == "retention.export")
    assert "an.nguyen" not in exported.details and json.loads(exported.details)["by"] == ["email"]

    by_cccd = subjects.export_subject(
        subjects.find_subject(subjects.parse_query({"cccd": AN_CCCD}), secret=str(app.secret_key)), "admin", now=END)
    assert [w["full_name"] for w in by_cccd["walkins"]] == ["Võ Thị Hoa"]
    assert [d["name"] for d in by_cccd["delegates"]] == ["Võ Thị Hoa"]  # her one-day code
    nobody = subjects.find_subject(subjects.parse_query({"cccd": BINH_CCCD}), secret=str(app.secret_key))
    assert nobody.empty


def test_the_query_needs_one_valid_identifier() -> None:
    for data, field in (({}, "email"), ({"email": "not-an-address"}, "email"), ({"phone": "12"}, "phone"),
                        ({"cccd": "12345"}, "cccd")):
        with pytest.raises(subjects.InvalidInputError) as raised:
            subjects.parse_query(data)
        assert field in raised.value.fields
    assert subjects.parse_query({"phone": "0912 345 678"}).phone == "+84912345678"


def test_erasing_one_person_leaves_the_others_and_the_totals(app: Flask, seeded: dict[str, Any]) -> None:
    meeting = seeded["meeting"]
    before = totals(meeting)
    found = subjects.find_subject(subjects.parse_query({"phone": "0912345678"}), secret=str(app.secret_key))
    counts = subjects.erase_subject(found, "admin", now=END + timedelta(days=2))
    assert counts["delegates_anonymised"] == 1
    assert counts["mail_jobs_deleted"] == 2  # the code mail and the queued message to the same address
    assert counts["codes_revoked"] == 0  # the meeting is over
    an = Delegate.get_by_id(seeded["an"].id)
    assert (an.name, an.email, an.phone) == (ANONYMOUS_NAME, "", None)
    assert names() == {ANONYMOUS_NAME, "Trần Thị Bình", "Lê Thị Chi", "Phạm Văn Dũng", "Võ Thị Hoa"}
    assert CheckIn.select().where(CheckIn.delegate == an.id).count() == 4  # kept, without the credential
    assert not CheckIn.select().where((CheckIn.delegate == an.id) & CheckIn.credential.is_null(False)).exists()
    assert CheckIn.select().where((CheckIn.delegate == seeded["binh"].id)
                                  & CheckIn.credential.is_null(False)).exists()
    assert AuditEntry.get(AuditEntry.target == f"delegate:{an.id}").details == "{}"
    assert "Bình" in AuditEntry.get(AuditEntry.target == f"delegate:{seeded['binh'].id}").details
    assert totals(meeting) == before
    erased = AuditEntry.get(AuditEntry.action == "retention.erase")
    assert "0912345678" not in erased.details and "+84912345678" not in erased.details
    # Anonymised rows no longer match: a second search finds nothing.
    assert subjects.find_subject(subjects.parse_query({"email": "an.nguyen@example.vn"}), secret="x").empty


def test_erasing_a_walkin_by_cccd_anonymises_the_walkin_and_her_code(app: Flask, seeded: dict[str, Any]) -> None:
    found = subjects.find_subject(subjects.parse_query({"cccd": AN_CCCD}), secret=str(app.secret_key))
    counts = subjects.erase_subject(found, "admin", now=END + timedelta(days=2))
    assert (counts["walkins_anonymised"], counts["delegates_anonymised"]) == (1, 1)
    assert Walkin.get_by_id(seeded["hoa"].id).id_hash == ""
    assert Delegate.get_by_id(seeded["hoa_code"].id).name == ANONYMOUS_NAME
    assert AuditEntry.get(AuditEntry.action == "walkin.register").details == "{}"
    assert "Nguyễn Văn An" in names()


def test_erasing_before_the_meeting_revokes_the_code_at_the_gates(app: Flask, seeded: dict[str, Any]) -> None:
    found = subjects.find_subject(subjects.parse_query({"email": "binh.tran@example.vn"}), secret=None)
    counts = subjects.erase_subject(found, "admin", now=START - timedelta(days=1))
    assert counts["codes_revoked"] == 1
    binh = Delegate.get_by_id(seeded["binh"].id)
    assert binh.revoked_at == START - timedelta(days=1)
    bodies = [json.loads(change.body) for change in Change.select().order_by(Change.seq)]
    upsert = next(b for b in bodies if b["kind"] == "delegate_upsert")
    assert upsert["delegate"]["name"] == ANONYMOUS_NAME and upsert["delegate"]["revoked"] is True
    assert any(b["kind"] == "delegate_revoke" and b["delegate_id"] == binh.id for b in bodies)


def test_searching_by_cccd_needs_the_secret_key(seeded: dict[str, Any]) -> None:
    with pytest.raises(subjects.InvalidInputError) as raised:
        subjects.find_subject(subjects.parse_query({"cccd": AN_CCCD}), secret=None)
    assert "cccd" in raised.value.fields


def _admin(client: FlaskClient, name: str = "admin") -> FlaskClient:
    assert login(client, name).status_code == 302
    return client


PAGE = "/admin/du-lieu-ca-nhan/"


def test_only_administrators_open_the_page(app: Flask, client: FlaskClient, seeded: dict[str, Any]) -> None:
    make_users(START)
    assert client.get(PAGE).status_code in {302, 401}
    for name in ("chuyenvien", "lanhdao", "baove"):
        other = app.test_client()
        _admin(other, name)
        assert other.get(PAGE).status_code == 403
        token = csrf(other.get("/meetings/").text) if name != "baove" else csrf(other.get("/ban-tiep-don/").text)
        for url in (PAGE, PAGE + "xuat", PAGE + "xoa"):
            answer = other.post(url, data={"csrf_token": token, "email": "an.nguyen@example.vn", "confirm": "1"})
            assert answer.status_code == 403, (name, url)
    assert "Nguyễn Văn An" in names()
    _admin(client)
    assert client.get(PAGE).status_code == 200


def test_the_page_finds_exports_and_erases_after_confirmation(app: Flask, client: FlaskClient,
                                                              seeded: dict[str, Any]) -> None:
    make_users(START)
    _admin(client)
    page = client.get(PAGE)
    assert "Dữ liệu cá nhân" in page.text
    token = csrf(page.text)
    found = client.post(PAGE, data={"csrf_token": token, "email": "an.nguyen@example.vn"})
    assert found.status_code == 200 and "Nguyễn Văn An" in found.text and "Trần Thị Bình" not in found.text
    assert client.post(PAGE, data={"csrf_token": token, "cccd": "123"}).status_code == 400
    assert client.post(PAGE, data={"email": "an.nguyen@example.vn"}).status_code == 400  # no CSRF token

    exported = client.post(PAGE + "xuat", data={"csrf_token": token, "email": "an.nguyen@example.vn"})
    assert exported.status_code == 200 and exported.mimetype == "application/json"
    assert "attachment" in exported.headers["Content-Disposition"]
    assert [d["name"] for d in exported.get_json()["delegates"]] == ["Nguyễn Văn An"]

    unconfirmed = client.post(PAGE + "xoa", data={"csrf_token": token, "email": "an.nguyen@example.vn"})
    assert unconfirmed.status_code == 400 and "xác nhận" in unconfirmed.text
    assert "Nguyễn Văn An" in names()
    erased = client.post(PAGE + "xoa", data={"csrf_token": token, "email": "an.nguyen@example.vn", "confirm": "1"})
    assert erased.status_code == 302
    assert "Nguyễn Văn An" not in names() and "Trần Thị Bình" in names()
    assert AuditEntry.get(AuditEntry.action == "retention.erase").actor == "admin"
    english = client.get(PAGE + "?lang=en").text
    assert "Personal data" in english and "Dữ liệu cá nhân" not in english
    refused = client.post(PAGE, data={"csrf_token": token, "cccd": "123"})
    assert "A citizen ID number has 12 digits" in refused.text


def test_the_command_line_purges_exports_and_erases(
    monkeypatch: pytest.MonkeyPatch, app: Flask, central_config: dict[str, Any], seeded: dict[str, Any],
    capsys: pytest.CaptureFixture[str], tmp_path: Any,
) -> None:
    database.close()
    for name, value in central_config.items():
        if name.startswith("VAORA_"):
            monkeypatch.setenv(name, str(value))
    # The real clock is long past the seeded meeting of March 2025 (check-ins are kept 730 days from its end).
    monkeypatch.setenv("VAORA_RETENTION_CHECKIN_DAYS", "3650")
    assert main(["purge", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "dry run" in out.err and "delegates_anonymised\t4" in out.out
    assert main(["subject-export", "--email", "an.nguyen@example.vn", "-o", str(tmp_path / "an.json")]) == 0
    exported = json.loads((tmp_path / "an.json").read_text(encoding="utf-8"))
    assert [d["name"] for d in exported["delegates"]] == ["Nguyễn Văn An"]
    assert main(["erase-person", "--email", "binh.tran@example.vn"]) == 2  # without --yes
    assert main(["erase-person", "--email", "binh.tran@example.vn", "--yes"]) == 0
    assert "delegates_anonymised\t1" in capsys.readouterr().out
    assert main(["subject-export", "--phone", "12", "-o", "-"]) == 2
    assert main(["purge"]) == 0
    assert "delegates_anonymised\t3" in capsys.readouterr().out
    database.connect(reuse_if_open=True)
    assert names() == {ANONYMOUS_NAME}
    assert CheckIn.select().count() == 8
