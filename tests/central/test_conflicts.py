"""Conflicts flagged at ingest: an entry with a code revoked or replaced before the scan, a second entry in one
meeting day under ``single`` (two gates admitting one code milliseconds apart included, in either delivery
order), an entry at a gate of none of the meeting's venues' sites. Each is recorded once however often the
check-in is delivered, a failure to record one never loses the check-in, "present" counts a seat once, and the
dashboard's state, the JSON API and the exports show who, which gate, when and why."""

from __future__ import annotations

import csv
import io
import subprocess
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook

from central.attendance.exports import build_attendance_list, to_csv, to_pdf, to_xlsx
from central.attendance.stats import meeting_statistics
from central.cli import main
from central.core.db import database
from central.core.states import ConflictReason
from central.gates import conflicts
from central.gates.checkins import store_checkin, store_checkins
from central.gates.models import CheckIn, CheckInConflict
from central.invitations.models import Invitation
from central.meetings.models import Meeting
from central.registration.models import Delegate
from protocols import payloads
from protocols.reasons import Reason

from .conftest import AUTH, START, Api, Clock
from .test_dashboard import as_user, dashboard_url
from .test_dashboard import world as world  # meeting at hq with a remote point at st; gates g1 (hq), r1 (st)

AN, BINH, CHI = "Nguyễn Văn An", "Trần Thị Bình", "Lê Minh Chi"


def entry(world: dict[str, Any], name: str | int, gate: str, at: datetime, *, checkin_id: uuid.UUID | None = None,
          site: str | None = None) -> payloads.CheckIn:
    """An allowed entry as a gate publishes it (``name``: a delegate's name in ``world``, or a delegate id)."""
    delegate_id = name if isinstance(name, int) else world["people"][name]
    return payloads.CheckIn(
        id=checkin_id or uuid.uuid4(), gate_id=gate, site_id=site or {"g1": "hq", "r1": "st"}.get(gate, "xa"),
        direction="in", scanned_at=at, allowed=True, reason=Reason.OK, outcome="entered",
        meeting_id=world["meeting"], delegate_id=delegate_id)


def store(*checkins: payloads.CheckIn, now: datetime | None = None) -> list[str]:
    with database.connection_context():
        acks = store_checkins([(c, c.gate_id) for c in checkins], now or checkins[-1].scanned_at + timedelta(seconds=1))
    return [ack.status for ack in acks]


def flagged(world: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(reason, name, gate) of every conflict of the meeting, oldest entry first."""
    with database.connection_context():
        rows = conflicts.meeting_conflicts(world["meeting"])
    return [(row["reason"], row["name"], row["gate_id"]) for row in reversed(rows)]


def replace(app: Flask, world: dict[str, Any], name: str, new_name: str, now: datetime) -> Delegate:
    from central.registration import services as registration
    from central.web import ctx

    with app.app_context(), database.connection_context():
        invitation = Invitation.get(Invitation.number == world["invitations"][0]["number"])
        context = ctx()
        deps = registration.Deps(signing_key=context.signing_key, mail_sender=context.mail_sender,
                                 mail_from=context.config.mail_from, entry_opens_before=context.entry_opens_before)
        return registration.replace_delegate(invitation, world["people"][name],
                                             {"name": new_name, "email": "dung@example.vn"}, now, deps)


def test_an_old_code_admitted_offline_after_its_replacement_is_flagged_and_the_seat_counts_once(
        app: Flask, client: FlaskClient, world: dict[str, Any], clock: Clock) -> None:
    clock.now = START - timedelta(hours=2)
    new = replace(app, world, BINH, "Phạm Quốc Dũng", clock.now)
    # A gate offline since before the replacement admits the old code; the new delegate enters at another gate.
    assert store(entry(world, BINH, "g1", START - timedelta(minutes=5))) == ["stored"]
    assert store(entry(world, new.id, "g1", START - timedelta(minutes=3))) == ["stored"]
    assert flagged(world) == [(ConflictReason.REPLACED_CODE.value, BINH, "g1")]
    with database.connection_context():
        (row,) = conflicts.meeting_conflicts(world["meeting"])
    assert row["replaced_by"] == "Phạm Quốc Dũng" and row["reason_vi"] == "Vào bằng mã của người đã được thay"

    as_user(client, "chuyenvien")
    state = client.get(dashboard_url(world, "/trang-thai.json")).get_json()
    assert (state["present"], state["expected"]) == (1, 3), "the old and the new delegate fill one seat"
    assert {"organisation": "Sở Tài chính", "expected": 2, "present": 1} in state["by_organisation"]
    people = {p["name"]: p for p in state["people"]}
    assert people[BINH]["present"] and people["Phạm Quốc Dũng"]["present"], "both people appear"
    assert people[BINH]["conflicts"] == ["replaced_code"] and people["Phạm Quốc Dũng"]["conflicts"] == []
    assert len(state["arrival_times"]) == 1
    assert [c["name"] for c in state["conflicts"]] == [BINH]

    api = client.get(f"/api/v1/meetings/{world['meeting']}/attendance", headers=AUTH).get_json()
    assert api["present"] == 1 and [c["reason"] for c in api["conflicts"]] == ["replaced_code"]

    with app.app_context(), database.connection_context():
        attendance = build_attendance_list(Meeting.get_by_id(world["meeting"]))
        rows = list(csv.reader(io.StringIO(to_csv(attendance).decode("utf-8-sig"))))
        workbook = load_workbook(io.BytesIO(to_xlsx(attendance)))
        pdf = subprocess.run(["pdftotext", "-layout", "-", "-"], input=to_pdf(attendance), capture_output=True,
                             check=True).stdout.decode("utf-8")
        statistics = meeting_statistics(Meeting.get_by_id(world["meeting"]))
    assert attendance.present == 1 and attendance.present_text == "Có mặt: 1/3"
    assert rows[0][-1] == "Xung đột"
    listed = {row[1]: row for row in rows[1:]}
    assert BINH in listed and "Phạm Quốc Dũng" in listed, "the replaced delegate who entered is listed too"
    assert listed[BINH][-1] == "Vào bằng mã của người đã được thay (thay bằng Phạm Quốc Dũng)"
    assert listed["Phạm Quốc Dũng"][-1] == ""
    sheet = [[cell for cell in row] for row in workbook.active.iter_rows(values_only=True)]
    assert sheet[5][-1] == "Xung đột" and any(row[-1] == listed[BINH][-1] for row in sheet[6:])
    assert "Có mặt: 1/3" in pdf and "Xung đột:" in pdf, pdf
    assert (statistics.expected, statistics.present) == (3, 1)


def test_a_code_revoked_before_the_scan_is_flagged_and_one_revoked_after_it_is_not(
        world: dict[str, Any], clock: Clock) -> None:
    with database.connection_context():
        Delegate.update(revoked_at=START).where(Delegate.id == world["people"][AN]).execute()
        Delegate.update(revoked_at=START + timedelta(hours=1)).where(Delegate.id == world["people"][CHI]).execute()
    store(entry(world, AN, "g1", START + timedelta(minutes=1)), entry(world, CHI, "r1", START + timedelta(minutes=2)))
    assert flagged(world) == [(ConflictReason.REVOKED_CODE.value, AN, "g1")]


def test_two_gates_admitting_one_code_milliseconds_apart_are_one_flagged_pair_in_either_delivery_order(
        world: dict[str, Any]) -> None:
    at = START - timedelta(minutes=2)
    first = entry(world, AN, "g1", at)
    second = entry(world, AN, "g1", at + timedelta(milliseconds=8), site="hq")
    store(second)  # the later one reaches central first (its gate was online)
    assert flagged(world) == []
    store(first)
    with database.connection_context():
        (row,) = conflicts.meeting_conflicts(world["meeting"])
        first_row = CheckIn.get(CheckIn.checkin_id == first.id)
        second_row = CheckIn.get(CheckIn.checkin_id == second.id)
    assert row["reason"] == ConflictReason.SECOND_ENTRY.value
    assert (row["checkin_id"], row["at"]) == (second_row.id, second_row.scanned_at.isoformat())
    assert (row["other_gate_id"], row["other_at"]) == ("g1", first_row.scanned_at.isoformat()), "both entries named"

    # In one batch, the same pair gives the same single conflict.
    day2 = entry(world, CHI, "r1", at), entry(world, CHI, "r1", at + timedelta(milliseconds=3))
    store(*day2)
    assert flagged(world).count((ConflictReason.SECOND_ENTRY.value, CHI, "r1")) == 1


def test_single_means_once_per_meeting_day_and_other_policies_flag_no_repeat(
        world: dict[str, Any]) -> None:
    with database.connection_context():
        Meeting.update(ends_at=START + timedelta(days=1, hours=9)).where(Meeting.id == world["meeting"]).execute()
    store(entry(world, AN, "g1", START - timedelta(minutes=10)))
    store(entry(world, AN, "g1", START + timedelta(days=1) - timedelta(minutes=30)))  # day 2: not a repeat
    assert flagged(world) == []
    store(entry(world, AN, "g1", START + timedelta(days=1, hours=4)))  # back after lunch on day 2
    assert flagged(world) == [(ConflictReason.SECOND_ENTRY.value, AN, "g1")]
    with database.connection_context():
        Meeting.update(entry_policy="reentry").where(Meeting.id == world["meeting"]).execute()
    store(entry(world, CHI, "r1", START), entry(world, CHI, "r1", START + timedelta(hours=1)))
    assert [reason for reason, name, _ in flagged(world) if name == CHI] == []


def test_an_entry_at_a_gate_of_another_site_is_flagged(world: dict[str, Any], api: Api) -> None:
    api.gate("x1", "xa")
    store(entry(world, AN, "x1", START), entry(world, CHI, "r1", START))  # r1: the remote point's site, fine
    assert flagged(world) == [(ConflictReason.WRONG_SITE.value, AN, "x1")]


def test_a_redelivered_checkin_gives_one_conflict_and_a_rescan_adds_none(world: dict[str, Any]) -> None:
    first = entry(world, AN, "g1", START)
    again = entry(world, AN, "g1", START + timedelta(seconds=30))
    assert store(first, again) == ["stored", "stored"]
    assert store(again) == ["duplicate"]
    assert store(again, first) == ["duplicate", "duplicate"]
    with database.connection_context():
        assert conflicts.scan_meeting(Meeting.get_by_id(world["meeting"]), START) == 0
        assert CheckInConflict.select().count() == 1
    assert flagged(world) == [(ConflictReason.SECOND_ENTRY.value, AN, "g1")]


def test_a_failure_to_record_conflicts_never_loses_the_checkin_and_the_cli_rescan_repairs_it(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, database_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("conflicts table unavailable")

    monkeypatch.setattr(conflicts, "record_conflicts", broken)
    first, again = entry(world, AN, "g1", START), entry(world, AN, "g1", START + timedelta(seconds=5))
    assert store(first, again) == ["stored", "stored"]
    with database.connection_context():
        assert CheckIn.select().where(CheckIn.checkin_id.in_([first.id, again.id])).count() == 2
        assert CheckInConflict.select().count() == 0
    assert "conflicts and alarms not recorded" in caplog.text
    monkeypatch.undo()
    monkeypatch.setenv("VAORA_DATABASE_URL", database_url)
    assert main(["conflicts", "--meeting", str(world["meeting"])]) == 0
    assert "0 conflicts" in capsys.readouterr().err
    assert main(["conflicts", "--meeting", str(world["meeting"]), "--rescan"]) == 0  # the repair
    out, err = capsys.readouterr()
    assert "1 new conflicts" in err and f"second_entry\tg1\t{AN}\tSở Tài chính" in out
    assert main(["conflicts", "--meeting", "999999"]) == 2
    assert flagged(world) == [(ConflictReason.SECOND_ENTRY.value, AN, "g1")]


def test_a_credential_with_two_allowed_entries_counts_once(client: FlaskClient, world: dict[str, Any]) -> None:
    at = START - timedelta(minutes=1)
    store(entry(world, AN, "g1", at), entry(world, AN, "r1", at + timedelta(milliseconds=5)))
    as_user(client, "chuyenvien")
    state = client.get(dashboard_url(world, "/trang-thai.json")).get_json()
    assert state["present"] == 1 and state["days"][0]["present"] == 1
    assert sum(v["present"] for v in state["by_venue"]) == 1
    assert [c["reason"] for c in state["conflicts"]] == ["second_entry"]
    page = client.get(dashboard_url(world)).text
    panel = page.split('id="dash-conflicts"', 1)[1].split("</section>", 1)[0]
    assert AN in panel and "Vào lần thứ hai trong cùng ngày họp" in panel
    assert "<td>Cổng chính</td>" in panel and "r1" not in panel, "the gates by name, not by id"
    assert [c["gate_name"] for c in state["conflicts"]] == ["Cổng chính"]
    assert 'id="dash-conflict-count">1<' in page


def test_checkins_that_are_not_entries_are_never_flagged(world: dict[str, Any]) -> None:
    refused = payloads.CheckIn(**{**entry(world, AN, "x9", START).model_dump(), "allowed": False,
                                  "reason": Reason.REVOKED, "outcome": "refused"})
    with database.connection_context():
        assert store_checkin(refused, "x9", START).status == "rejected"  # unknown gate: not stored at all
    store(entry(world, AN, "g1", START),
          payloads.CheckIn(**{**entry(world, AN, "g1", START + timedelta(minutes=1)).model_dump(), "direction": "out"}))
    assert flagged(world) == []
