"""Payload models: round trips, versioning and every kind of bad payload from the wire."""

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.payloads import (
    MAX_PAYLOAD_BYTES,
    MODELS,
    Ack,
    Change,
    CheckIn,
    DelegateEntry,
    DelegateRevoke,
    DelegateUpsert,
    GateStatus,
    Heartbeat,
    PayloadError,
    Snapshot,
    decode,
    encode,
)
from protocols.reasons import Reason

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

SOME_ID = UUID("7b0c1f8e-3d2a-4c5b-9e6f-0a1b2c3d4e5f")
"""A fixed check-in id for parametrised cases (ids must be the same in every pytest-xdist worker)."""


def make_checkin(**overrides):
    fields = dict(
        id=uuid4(),
        gate_id="lobby-1",
        site_id="hq",
        direction="in",
        scanned_at=NOW,
        allowed=True,
        reason="ok",
        outcome="entered",
        meeting_id=1,
        delegate_id=2,
        scheme="compact",
        credential="a" * 64,
    )
    fields.update(overrides)
    return CheckIn(**fields)


def test_checkin_round_trip():
    checkin = make_checkin()
    assert decode(CheckIn, encode(checkin)) == checkin
    assert json.loads(encode(checkin))["v"] == 1


def test_every_model_carries_version_one():
    for name, model in MODELS.items():
        assert model.model_fields["v"].default == 1, name


def test_change_body_is_discriminated():
    delegate = DelegateEntry(
        id=2, meeting_id=1, name="Nguyễn Văn An", organisation="Sở Tư pháp", valid_from=NOW, valid_until=NOW
    )
    change = Change(seq=7, at=NOW, body=DelegateUpsert(delegate=delegate))
    again = decode(Change, encode(change))
    assert isinstance(again.body, DelegateUpsert) and again.body.delegate.name == "Nguyễn Văn An"
    revoke = decode(Change, encode(Change(seq=8, at=NOW, body=DelegateRevoke(meeting_id=1, delegate_id=2))))
    assert isinstance(revoke.body, DelegateRevoke)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", Reason.MALFORMED),
        (b"[1, 2]", Reason.MALFORMED),
        (b"\xff\xfe\x00", Reason.MALFORMED),
        (b"", Reason.MALFORMED),
        (b'{"v": 2, "checkin_id": "x"}', Reason.UNSUPPORTED_VERSION),
        (b'{"checkin_id": "x"}', Reason.MALFORMED),
        (b'{"v": 1, "checkin_id": "not-a-uuid", "gate_id": "g", "status": "stored"}', Reason.MALFORMED),
        (
            b'{"v": 1, "checkin_id": "%s", "gate_id": "G/#", "status": "stored"}' % str(SOME_ID).encode(),
            Reason.MALFORMED,
        ),
        (b" " * (MAX_PAYLOAD_BYTES + 1), Reason.TOO_LONG),
    ],
)
def test_bad_payloads_raise_payload_error_with_reason(raw, reason):
    with pytest.raises(PayloadError) as info:
        decode(Ack, raw)
    assert info.value.reason is reason


def test_one_megabyte_payload_is_refused_before_parsing():
    with pytest.raises(PayloadError) as info:
        decode(CheckIn, b'{"v":1,"x":"' + b"a" * 1_048_576 + b'"}')
    assert info.value.reason is Reason.TOO_LONG


def test_unknown_fields_and_naive_datetimes_are_refused():
    data = json.loads(encode(make_checkin()))
    with pytest.raises(PayloadError):
        decode(CheckIn, json.dumps({**data, "extra": 1}))
    with pytest.raises(PayloadError):
        decode(CheckIn, json.dumps({**data, "scanned_at": "2026-11-26T08:00:00"}))


def test_snapshot_may_exceed_the_mqtt_limit():
    delegates = [
        DelegateEntry(
            id=i,
            meeting_id=1,
            name=f"Đại biểu {i}",
            organisation="UBND",
            code_hash=f"{i:064x}",
            valid_from=NOW,
            valid_until=NOW,
        )
        for i in range(2000)
    ]
    snapshot = Snapshot(seq=1, generated_at=NOW, meetings=[], delegates=delegates, keys=[])
    raw = encode(snapshot)
    assert len(raw) > MAX_PAYLOAD_BYTES
    assert len(decode(Snapshot, raw).delegates) == 2000


def test_status_and_heartbeat():
    will = GateStatus(gate_id="lobby-1", state="offline")
    assert decode(GateStatus, encode(will)).state == "offline"
    beat = Heartbeat(gate_id="lobby-1", sent_at=NOW, cache_seq=12, outbox_pending=0, software_version="0.1.0")
    assert decode(Heartbeat, encode(beat)).cache_seq == 12


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_escape_as_another_exception(raw):
    for model in MODELS.values():
        try:
            decode(model, raw)
        except PayloadError as exc:
            assert exc.reason in {Reason.MALFORMED, Reason.TOO_LONG, Reason.UNSUPPORTED_VERSION}


def test_decode_acks_reads_a_single_ack_and_a_batch() -> None:
    from protocols.payloads import MAX_ACKS_PER_BATCH, Ack, AckBatch, decode_acks

    one = Ack(checkin_id=uuid4(), gate_id="g1", status="stored")
    assert decode_acks(encode(one)) == [one]
    many = [Ack(checkin_id=uuid4(), gate_id="g1", status="duplicate") for _ in range(MAX_ACKS_PER_BATCH)]
    raw = encode(AckBatch(gate_id="g1", acks=many))
    assert len(raw) < 64 * 1024
    assert decode_acks(raw) == many


def test_an_ack_batch_carries_centrals_clock_once_and_no_acks_own_clock() -> None:
    """``encode_ack_batch``: the acks' ``sent_at`` and ``gate_time`` stay out (a gate older than them still reads
    the batch), the batch's ``sent_at`` goes once, and the bytes are those of ``encode`` on the stripped copies."""
    from protocols.payloads import Ack, AckBatch, decode_acks, encode_ack_batch

    sent = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    acks = [Ack(checkin_id=uuid4(), gate_id="g1", status=status, reason=reason, sent_at=sent,
                gate_time=datetime(2026, 12, 7, 11, 59, 58, tzinfo=UTC))
            for status, reason in (("stored", None), ("duplicate", None), ("rejected", "malformed"))]
    raw = encode_ack_batch("g1", acks, sent)
    body = json.loads(raw)
    assert [sorted(ack) for ack in body["acks"]] == [["checkin_id", "gate_id", "reason", "status", "v"]] * 3
    assert body["sent_at"].startswith("2026-12-07T12:00:00")
    stripped = [ack.model_copy(update={"sent_at": None, "gate_time": None}) for ack in acks]
    assert raw == encode(AckBatch(gate_id="g1", acks=stripped, sent_at=sent))
    assert [ack.model_copy(update={"sent_at": None}) for ack in decode_acks(raw)] == stripped
    assert all(ack.sent_at == sent for ack in decode_acks(raw))  # the batch's clock, copied into each ack
    assert "sent_at" not in json.loads(encode_ack_batch("g1", acks, None))


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"v": 1, "gate_id": "g1", "acks": []}, Reason.MALFORMED),
        ({"v": 2, "gate_id": "g1", "acks": [{"checkin_id": str(SOME_ID), "gate_id": "g1", "status": "stored"}]},
         Reason.UNSUPPORTED_VERSION),
        ({"v": 1, "gate_id": "g1", "acks": [{"checkin_id": "x", "gate_id": "g1", "status": "stored"}]},
         Reason.MALFORMED),
        ({"v": 1, "gate_id": "g1", "acks": [{"checkin_id": str(SOME_ID), "gate_id": "g2", "status": "stored"}]},
         Reason.MALFORMED),
    ],
)
def test_decode_acks_refuses_bad_batches(body: dict, reason: Reason) -> None:
    from protocols.payloads import decode_acks

    with pytest.raises(PayloadError) as refused:
        decode_acks(json.dumps(body))
    assert refused.value.reason is reason
