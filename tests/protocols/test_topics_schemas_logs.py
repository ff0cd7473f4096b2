"""Topic tree, generated JSON Schemas kept up to date, reason texts and log masking."""

import json
import logging
from datetime import UTC, datetime
from uuid import uuid4

import jsonschema
import pytest

from protocols import topics
from protocols.logs import StructuredFormatter, mask_email, mask_id_number, mask_phone
from protocols.payloads import (
    MODELS,
    Ack,
    AckBatch,
    Change,
    CheckIn,
    Command,
    CommandResult,
    DelegateEntry,
    GateStatus,
    Heartbeat,
    KeyAdd,
    KeyEntry,
    MeetingEntry,
    Snapshot,
    SnapshotEnd,
    SnapshotHeader,
    encode,
)
from protocols.reasons import REASON_TEXT, Reason, describe
from protocols.schemas import SCHEMA_DIR, generate

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def sample_payloads():
    meeting = MeetingEntry(
        id=1,
        title="Họp giao ban",
        scheme="signed",
        starts_at=NOW,
        ends_at=NOW,
        site_id="hq",
        venue="Hội trường A",
        status="open",
    )
    delegate = DelegateEntry(
        id=2,
        meeting_id=1,
        name="Trần Thị Bình",
        organisation="Sở Y tế",
        code_hash="0" * 64,
        valid_from=NOW,
        valid_until=NOW,
    )
    key = KeyEntry(key_id=1, public_key="A" * 43 + "=")
    return {
        "checkin": CheckIn(
            id=uuid4(),
            gate_id="g1",
            site_id="hq",
            direction="in",
            scanned_at=NOW,
            allowed=False,
            reason="revoked",
            outcome="refused",
        ),
        "ack": Ack(checkin_id=uuid4(), gate_id="g1", status="stored"),
        "ack_batch": AckBatch(gate_id="g1", acks=[Ack(checkin_id=uuid4(), gate_id="g1", status="duplicate")]),
        "gate_status": GateStatus(gate_id="g1", state="online", since=NOW),
        "heartbeat": Heartbeat(
            gate_id="g1", sent_at=NOW, cache_seq=1, outbox_pending=0, software_version="1"
        ),
        "snapshot": Snapshot(seq=1, generated_at=NOW, meetings=[meeting], delegates=[delegate], keys=[key]),
        "snapshot_header": SnapshotHeader(seq=1, generated_at=NOW, meetings=1, delegates=1, keys=1),
        "snapshot_end": SnapshotEnd(seq=1),
        "change": Change(seq=1, at=NOW, body=KeyAdd(key=key)),
        "command": Command(id=uuid4(), gate_id="g1", action="open", issued_by="guard", issued_at=NOW),
        "command_result": CommandResult(command_id=uuid4(), gate_id="g1", ok=True),
    }


def test_topics_live_under_the_versioned_root():
    assert topics.gate_checkins("lobby-1") == "vaora/v1/gates/lobby-1/checkins"
    assert topics.site_checkins("hq") == "vaora/v1/sites/hq/checkins"
    assert topics.site_changes("hq") == "vaora/v1/sites/hq/changes"
    assert topics.ALL_SITE_CHANGES == "vaora/v1/sites/+/changes"
    assert topics.gate_id_from_topic("vaora/v1/gates/lobby-1/acks") == "lobby-1"
    assert topics.gate_id_from_topic("vaora/v1/gates/Lobby#/acks") is None
    assert topics.gate_id_from_topic("other/v1/gates/g/acks") is None


@pytest.mark.parametrize("bad", ["", "A", "a/b", "a+", "#", "x" * 33, "-a"])
def test_invalid_ids_never_make_topics(bad):
    assert not topics.is_valid_id(bad)
    with pytest.raises(ValueError):
        topics.gate_status(bad)
    with pytest.raises(ValueError):
        topics.site_changes(bad)


def test_schema_files_are_up_to_date():
    generated = generate()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in SCHEMA_DIR.glob("*.json")}
    assert on_disk == generated, "run `make schemas` and commit the result"


def test_samples_validate_against_their_schema():
    for name, payload in sample_payloads().items():
        schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
        jsonschema.validate(json.loads(encode(payload)), schema)
    assert set(sample_payloads()) == set(MODELS)


def test_a_sites_change_validates_against_the_schema_and_a_bad_prev_does_not():
    schema = json.loads((SCHEMA_DIR / "change.json").read_text(encoding="utf-8"))
    site_change = sample_payloads()["change"].model_copy(update={"prev": 0})
    jsonschema.validate(json.loads(encode(site_change)), schema)
    for bad in (-1, "0", 1.5):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**json.loads(encode(site_change)), "prev": bad}, schema)


def test_every_reason_has_vietnamese_and_english_text():
    assert set(REASON_TEXT) == set(Reason)
    assert describe(Reason.UNKNOWN_CODE) == "Mã không có trong danh sách"
    assert describe("revoked", "en") == "Code revoked"


def test_masks_hide_personal_data():
    assert mask_phone("0912 345 678") == "*******678"
    assert mask_email("lan.nguyen@hanoi.gov.vn") == "l***@hanoi.gov.vn"
    assert mask_id_number("001085012345") == "********2345"
    assert mask_phone(None) == mask_email("") == mask_id_number(None) == ""


def test_structured_formatter_quotes_and_adds_extras():
    record = logging.makeLogRecord(
        {
            "name": "gate",
            "levelname": "WARNING",
            "msg": "scan refused",
            "reason": "unknown_code",
            "gate": "g 1",
        }
    )
    line = StructuredFormatter("gate").format(record)
    assert 'msg="scan refused"' in line
    assert "reason=unknown_code" in line and 'gate="g 1"' in line
    assert "service=gate" in line and "\n" not in line


def test_a_shared_subscription_names_its_group_and_refuses_a_bad_one() -> None:
    assert topics.shared("vaora-ingest", topics.ALL_GATE_CHECKINS) == "$share/vaora-ingest/vaora/v1/gates/+/checkins"
    for bad in ("", "a/b", "+", "#", "$x", "a b"):
        with pytest.raises(ValueError, match="share group"):
            topics.shared(bad, topics.ALL_GATE_CHECKINS)
