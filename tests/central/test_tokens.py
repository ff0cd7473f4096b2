"""Bearer secrets at rest (``central.core.tokens``): stored as digests, compared so a miss never matches."""

from __future__ import annotations

from central.core.tokens import digest, matches


def test_a_secret_matches_its_own_digest_only() -> None:
    assert matches(digest("Ab_-9z"), digest("Ab_-9z"))
    assert not matches(digest("Ab_-9z"), digest("Ab_-9Z"))


def test_an_absent_or_empty_stored_digest_never_matches_not_even_the_stand_in() -> None:
    for stored in (None, ""):
        assert not matches(stored, digest("vaora: no such secret"))  # the stand-in's own preimage
        assert not matches(stored, "")
