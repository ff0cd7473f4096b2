"""The clock fields and gates that predate them: what such a gate receives still validates against the schemas it
was built with (frozen in ``frozen/v1-5a5b659``, unknown fields forbidden), and their payloads stay valid here."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from protocols.payloads import (
    Ack,
    AckBatch,
    CheckIn,
    Command,
    Direction,
    Heartbeat,
    Outcome,
    decode,
    decode_acks,
    encode,
    encode_site_checkin,
    measures_clock,
)
from protocols.reasons import Reason

FROZEN = Path(__file__).parent / "frozen" / "v1-5a5b659"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def old_gate_reads(name: str, raw: bytes) -> None:
    """Raise unless a gate of commit 5a5b659 accepts ``raw`` as its payload ``name``."""
    schema = json.loads((FROZEN / f"{name}.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(raw), schema)


def ack(**clock: Any) -> Ack:
    return Ack(checkin_id=uuid.uuid4(), gate_id="g1", status="stored", **clock)


def test_acks_and_commands_without_clock_fields_are_what_older_gates_knew() -> None:
    old_gate_reads("ack", encode(ack()))
    old_gate_reads("ack_batch", encode(AckBatch(gate_id="g1", acks=[ack(), ack()])))
    command = Command(id=uuid.uuid4(), gate_id="g1", action="open", issued_by="bao-ve-an", issued_at=NOW)
    old_gate_reads("command", encode(command))
    with pytest.raises(jsonschema.ValidationError):  # the frozen schemas do refuse a new field
        old_gate_reads("ack", encode(ack(sent_at=NOW, gate_time=NOW)))


def test_the_site_check_in_of_a_new_gate_is_read_by_an_older_sibling() -> None:
    checkin = CheckIn(id=uuid.uuid4(), gate_id="g1", site_id="hq", direction=Direction.IN, scanned_at=NOW,
                      allowed=True, reason=Reason.OK, outcome=Outcome.ENTERED, credential="c" * 64,
                      clock_offset_s=-300.0)
    old_gate_reads("checkin", encode_site_checkin(checkin))
    assert decode(CheckIn, encode_site_checkin(checkin)).clock_offset_s is None


def test_a_new_gate_always_says_it_measures_its_clock_an_older_one_does_not() -> None:
    beat = Heartbeat(gate_id="g1", sent_at=NOW, cache_seq=0, outbox_pending=0, software_version="1.5",
                     clock_offset_s=None)
    assert '"clock_offset_s":null' in encode(beat).decode() and measures_clock(decode(Heartbeat, encode(beat)))
    old = '{"v":1,"gate_id":"g1","sent_at":"2026-12-07T09:00:00Z","cache_seq":0,"outbox_pending":0,' \
          '"software_version":"1.4"}'
    assert not measures_clock(decode(Heartbeat, old))


def test_a_batch_carries_centrals_clock_to_each_of_its_acks() -> None:
    raw = encode(AckBatch(gate_id="g1", acks=[ack(), ack(sent_at=NOW.replace(hour=8))], sent_at=NOW))
    assert [a.sent_at for a in decode_acks(raw)] == [NOW, NOW.replace(hour=8)]
