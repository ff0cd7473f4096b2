"""decide(): every reason code, table-driven, against a real cache; arbitrary text never raises."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.decision import Decision, decide
from gate.store import CacheView, GateStore
from protocols.codes import (
    ALPHABET,
    MAX_SCAN_LENGTH,
    Scheme,
    SignedClaims,
    compact_hash,
    encode_signed,
    generate_signing_key,
)
from protocols.payloads import Change, DelegateRevoke, DelegateUpsert, GateMode, MeetingUpsert
from protocols.reasons import Reason
from tests.gate.gate_helpers import NOW, SITE, World, build_world


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GateStore, World]]:
    world = build_world()
    cache = GateStore(tmp_path_factory.mktemp("decision"))
    cache.load_snapshot(world.snapshot, NOW)
    yield cache, world
    cache.close()


def signed(world: World, meeting_id: int = 2, attendee_id: int = 7001, key_id: int = 7,
           valid_from_h: float = -1, valid_until_h: float = 3, key: object = None, version: int = 1) -> str:
    claims = SignedClaims(key_id=key_id, meeting_id=meeting_id, attendee_id=attendee_id,
                          valid_from=NOW + timedelta(hours=valid_from_h),
                          valid_until=NOW + timedelta(hours=valid_until_h))
    return encode_signed(claims, key or world.signing_key, version=version)  # type: ignore[arg-type]


def mistype(code: str) -> str:
    """Change one character to another alphabet character: the check character catches it."""
    swapped = ALPHABET[(ALPHABET.index(code[3]) + 1) % len(ALPHABET)]
    return code[:3] + swapped + code[4:]


def tamper(text: str) -> str:
    """Flip one base32 character in the signature part."""
    i = len(text) - 5
    return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]


def unknown_compact() -> str:
    from protocols.codes import generate_compact
    return generate_compact()


CASES: list[tuple[str, Callable[[World], str], Reason]] = [
    ("compact ok", lambda w: w.codes[1], Reason.OK),
    ("compact ok, lowercase with hyphens", lambda w: "-".join([w.codes[2][:7].lower(), w.codes[2][7:]]),
     Reason.OK),
    ("citizen ID card", lambda w: "001085012345|123456789|Nguyễn Văn Ánh|15081985|Nam|Hà Nội|20042021",
     Reason.ID_CARD),
    ("too long", lambda w: "A" * (MAX_SCAN_LENGTH + 1), Reason.TOO_LONG),
    ("neither scheme", lambda w: "hello world!", Reason.MALFORMED),
    ("empty", lambda w: "", Reason.MALFORMED),
    ("compact wrong length", lambda w: w.codes[1][:-1], Reason.MALFORMED),
    ("compact mistyped", lambda w: mistype(w.codes[1]), Reason.BAD_CHECKSUM),
    ("compact not on the list", lambda w: unknown_compact(), Reason.UNKNOWN_CODE),
    ("compact revoked", lambda w: w.codes[9001], Reason.REVOKED),
    ("compact meeting cancelled", lambda w: w.codes[9003], Reason.MEETING_CANCELLED),
    ("compact other site", lambda w: w.codes[9004], Reason.UNKNOWN_CODE),
    ("compact not yet valid", lambda w: w.codes[9005], Reason.NOT_YET_VALID),
    ("compact expired", lambda w: w.codes[9006], Reason.EXPIRED),
    ("signed ok", lambda w: signed(w), Reason.OK),
    ("signed ok, delegate not synced yet", lambda w: signed(w, attendee_id=7999), Reason.OK),
    ("signed truncated", lambda w: signed(w)[:-10], Reason.MALFORMED),
    ("signed unknown key", lambda w: signed(w, key_id=8), Reason.UNKNOWN_KEY),
    ("signed tampered", lambda w: tamper(signed(w)), Reason.BAD_SIGNATURE),
    ("signed forged with another key", lambda w: signed(w, key=generate_signing_key()), Reason.BAD_SIGNATURE),
    ("signed not yet valid", lambda w: signed(w, valid_from_h=1), Reason.NOT_YET_VALID),
    ("signed expired", lambda w: signed(w, valid_from_h=-5, valid_until_h=-1), Reason.EXPIRED),
    ("signed unknown meeting", lambda w: signed(w, meeting_id=99), Reason.UNKNOWN_CODE),
    ("signed revoked delegate", lambda w: signed(w, attendee_id=7002), Reason.REVOKED),
    ("signed cancelled meeting", lambda w: signed(w, meeting_id=3, attendee_id=1), Reason.MEETING_CANCELLED),
    ("signed other site", lambda w: signed(w, meeting_id=4, attendee_id=1), Reason.UNKNOWN_CODE),
]


@pytest.mark.parametrize(("label", "make_scan", "expected"), CASES, ids=[c[0] for c in CASES])
def test_every_reason(loaded: tuple[GateStore, World], label: str, make_scan: Callable[[World], str],
                      expected: Reason) -> None:
    cache, world = loaded
    decision = decide(make_scan(world), cache, NOW, SITE)
    assert decision.reason is expected
    assert decision.allowed is (expected is Reason.OK)


V2_CASES: list[tuple[str, dict[str, object], Reason]] = [
    ("ok", {}, Reason.OK),
    ("delegate not synced yet", {"attendee_id": 7999}, Reason.OK),
    ("unknown key", {"key_id": 8}, Reason.UNKNOWN_KEY),
    ("forged with another key", {"key": "other"}, Reason.BAD_SIGNATURE),
    ("not yet valid", {"valid_from_h": 1}, Reason.NOT_YET_VALID),
    ("expired", {"valid_from_h": -5, "valid_until_h": -1}, Reason.EXPIRED),
    ("revoked delegate", {"attendee_id": 7002}, Reason.REVOKED),
    ("cancelled meeting", {"meeting_id": 3, "attendee_id": 1}, Reason.MEETING_CANCELLED),
]


@pytest.mark.parametrize(("label", "changes", "expected"), V2_CASES, ids=[c[0] for c in V2_CASES])
def test_the_short_signed_code_has_the_same_reasons(loaded: tuple[GateStore, World], label: str,
                                                    changes: dict, expected: Reason) -> None:
    """Version 2 (149 digits) is decided like version 1, with the short key from the snapshot."""
    cache, world = loaded
    if changes.get("key") == "other":
        changes = {**changes, "key": generate_signing_key()}
    text = signed(world, version=2, **changes)
    assert len(text) == 149 and text.isdigit()
    assert decide(text, cache, NOW, SITE).reason is expected


def test_a_short_code_changed_anywhere_or_cut_is_refused(loaded: tuple[GateStore, World]) -> None:
    cache, world = loaded
    text = signed(world, version=2)
    assert decide(text, cache, NOW, SITE).reason is Reason.OK
    for index in range(2, len(text), 7):
        changed = text[:index] + str((int(text[index]) + 3) % 10) + text[index + 1:]
        assert decide(changed, cache, NOW, SITE).allowed is False, index
    assert decide(text[:-1], cache, NOW, SITE).reason is Reason.MALFORMED


def test_allowed_compact_decision_carries_delegate_and_hash(loaded: tuple[GateStore, World]) -> None:
    cache, world = loaded
    decision = decide(world.codes[1], cache, NOW, SITE)
    assert decision.scheme is Scheme.COMPACT
    assert (decision.meeting_id, decision.delegate_id) == (1, 1)
    assert decision.credential == compact_hash(world.codes[1])
    assert (decision.name, decision.organisation, decision.position) == ("Nguyễn Văn 1", "Sở Tư pháp",
                                                                         "Phó Giám đốc")


def test_signed_decision_credential_and_unsynced_delegate(loaded: tuple[GateStore, World]) -> None:
    cache, world = loaded
    decision = decide(signed(world, attendee_id=7999), cache, NOW, SITE)
    assert decision.allowed and decision.credential == "signed:7:2:7999"
    assert decision.name is None  # not in the cache yet, admitted on the signature


def test_validity_boundaries_are_inclusive(loaded: tuple[GateStore, World]) -> None:
    cache, world = loaded
    delegate = cache.lookup_code_hash(compact_hash(world.codes[1]))
    assert delegate is not None
    assert decide(world.codes[1], cache, delegate.valid_from, SITE).reason is Reason.OK
    assert decide(world.codes[1], cache, delegate.valid_until, SITE).reason is Reason.OK
    just_after = delegate.valid_until + timedelta(seconds=1)
    assert decide(world.codes[1], cache, just_after, SITE).reason is Reason.EXPIRED


def test_a_failing_cache_is_an_internal_error_not_a_crash(loaded: tuple[GateStore, World]) -> None:
    _, world = loaded

    class Broken:
        def lookup_code_hash(self, code_hash: str) -> None:
            raise OSError("disk gone")

        def delegate(self, meeting_id: int, delegate_id: int) -> None:
            raise OSError("disk gone")

        def meeting(self, meeting_id: int) -> None:
            raise OSError("disk gone")

        def short_public_keys(self) -> dict:
            return {}

        def public_keys(self) -> dict:
            return {}

    decision = decide(world.codes[1], Broken(), NOW, SITE)
    assert (decision.allowed, decision.reason) == (False, Reason.INTERNAL_ERROR)


def test_decision_is_frozen(loaded: tuple[GateStore, World]) -> None:
    cache, world = loaded
    decision = decide(world.codes[1], cache, NOW, SITE)
    with pytest.raises(AttributeError):
        decision.allowed = False  # type: ignore[misc]
    assert replace(decision, allowed=False).allowed is False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(
    st.text(max_size=300),
    st.text(alphabet=ALPHABET + " -", min_size=10, max_size=20),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", max_size=200).map(lambda s: "VR1:" + s),
))
def test_arbitrary_text_never_raises(loaded: tuple[GateStore, World], text: str) -> None:
    cache, _ = loaded
    decision = decide(text, cache, NOW, SITE)
    assert isinstance(decision.reason, Reason)
    if decision.allowed:
        assert decision.reason is Reason.OK


def test_decision_needs_no_clock_or_io(loaded: tuple[GateStore, World], tmp_path: Path) -> None:
    """The same inputs give the same answer whatever the wall clock says."""
    cache, world = loaded
    later = NOW + timedelta(days=3)
    assert decide(world.codes[1], cache, NOW, SITE).reason is Reason.OK
    assert decide(world.codes[1], cache, later, SITE).reason is Reason.EXPIRED


@pytest.mark.parametrize("mode", ["normal", "release"])
def test_a_gate_not_locked_down_decides_as_usual(loaded: tuple[GateStore, World], mode: GateMode) -> None:
    cache, world = loaded
    assert decide(world.codes[1], cache, NOW, SITE, mode=mode).reason is Reason.OK
    assert decide(world.codes[9001], cache, NOW, SITE, mode=mode).reason is Reason.REVOKED


@pytest.mark.parametrize("make_scan", [lambda w: w.codes[1], lambda w: w.codes[9001], lambda w: "x" * 10_000,
                                       lambda w: signed(w)], ids=["valid", "revoked", "too-long", "signed"])
def test_lockdown_is_the_first_check(loaded: tuple[GateStore, World], make_scan: Callable[[World], str]) -> None:
    cache, world = loaded
    decision = decide(make_scan(world), cache, NOW, SITE, mode="lockdown")
    assert decision == Decision(False, Reason.LOCKED_DOWN), "refused before the scan is even read"


def test_lockdown_does_not_touch_the_cache(world: World) -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"decide() read the cache ({name}) during a lockdown")

    view = cast(CacheView, Untouchable())
    assert decide(world.codes[1], view, NOW, SITE, mode="lockdown").reason is Reason.LOCKED_DOWN


def test_cancelled_meeting_codes_are_refused_as_cancelled_not_revoked(tmp_path: Path) -> None:
    """Cancelling revokes every code of the meeting; the change stream carries the new status first (central's
    set_status), and whichever way the cache learnt both, the person hears the meeting was cancelled."""
    world = build_world()
    cache = GateStore(tmp_path)
    try:
        cache.load_snapshot(world.snapshot, NOW)
        open_meeting = next(m for m in world.snapshot.meetings if m.id == 1)
        seq = world.snapshot.seq
        for body in (MeetingUpsert(meeting=open_meeting.model_copy(update={"status": "cancelled"})),
                     DelegateRevoke(meeting_id=1, delegate_id=1)):
            seq += 1
            cache.apply_change(Change(seq=seq, at=NOW, body=body), NOW)
        assert decide(world.codes[1], cache, NOW, SITE).reason is Reason.MEETING_CANCELLED
        assert decide(world.codes[9001], cache, NOW, SITE).reason is Reason.MEETING_CANCELLED
        assert decide(signed(world, meeting_id=3, attendee_id=9003), cache, NOW, SITE).reason \
            is Reason.MEETING_CANCELLED
    finally:
        cache.close()


def test_another_sites_code_has_one_reason_by_snapshot_or_by_change(tmp_path: Path) -> None:
    """A snapshot holds only the gate's site; the change stream carries every site's meetings. Both answer the
    same for a code of another site."""
    world = build_world()
    other = next(m for m in world.snapshot.meetings if m.site_id != SITE)
    other_delegate = next(d for d in world.snapshot.delegates if d.meeting_id == other.id)
    site_only = world.snapshot.model_copy(update={
        "meetings": [m for m in world.snapshot.meetings if m.site_id == SITE],
        "delegates": [d for d in world.snapshot.delegates if d.meeting_id != other.id],
    })
    by_snapshot = GateStore(tmp_path / "snapshot")
    by_change = GateStore(tmp_path / "change")
    try:
        by_snapshot.load_snapshot(site_only, NOW)
        by_change.load_snapshot(site_only, NOW)
        seq = site_only.seq
        for body in (MeetingUpsert(meeting=other), DelegateUpsert(delegate=other_delegate)):
            seq += 1
            by_change.apply_change(Change(seq=seq, at=NOW, body=body), NOW)
        assert by_change.meeting(other.id) is not None and by_snapshot.meeting(other.id) is None
        for scan in (world.codes[other_delegate.id], signed(world, meeting_id=other.id, attendee_id=1)):
            answers = {decide(scan, cache, NOW, SITE).reason for cache in (by_snapshot, by_change)}
            assert answers == {Reason.UNKNOWN_CODE}
    finally:
        by_snapshot.close()
        by_change.close()


def test_a_remote_points_gate_admits_the_meeting_by_snapshot_or_by_change(tmp_path: Path) -> None:
    """Meeting 4 is held at its main hall's site and at a remote point ("điểm cầu") at site ``st``. A gate at ``st``
    admits its delegates whether its snapshot or the change stream brought the meeting; a gate at a third site
    refuses them as a code of another site; taking the remote point away refuses them at ``st`` again."""
    world = build_world()
    other = next(m for m in world.snapshot.meetings if m.site_id != SITE)
    remote = other.model_copy(update={"sites": [other.site_id, "st"]})
    delegate = next(d for d in world.snapshot.delegates if d.meeting_id == other.id)
    with_remote = world.snapshot.model_copy(update={
        "meetings": [remote if m.id == other.id else m for m in world.snapshot.meetings]})
    by_snapshot = GateStore(tmp_path / "snapshot")
    by_change = GateStore(tmp_path / "change")
    try:
        by_snapshot.load_snapshot(with_remote, NOW)
        by_change.load_snapshot(world.snapshot, NOW)  # the meeting without its remote point yet
        assert decide(world.codes[delegate.id], by_change, NOW, "st").reason is Reason.UNKNOWN_CODE
        by_change.apply_change(Change(seq=world.snapshot.seq + 1, at=NOW, body=MeetingUpsert(meeting=remote)), NOW)
        for cache in (by_snapshot, by_change):
            for scan in (world.codes[delegate.id], signed(world, meeting_id=other.id, attendee_id=1)):
                assert decide(scan, cache, NOW, "st").allowed
                assert decide(scan, cache, NOW, other.site_id).allowed, "the main hall's gates still admit"
                assert decide(scan, cache, NOW, "third").reason is Reason.UNKNOWN_CODE
        removed = remote.model_copy(update={"sites": None})
        by_change.apply_change(Change(seq=world.snapshot.seq + 2, at=NOW, body=MeetingUpsert(meeting=removed)), NOW)
        assert decide(world.codes[delegate.id], by_change, NOW, "st").reason is Reason.UNKNOWN_CODE
    finally:
        by_snapshot.close()
        by_change.close()
