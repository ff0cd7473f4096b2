"""LineAssembler: turning scanner bytes into scans, with garbage, over-long lines and split reads."""

from __future__ import annotations

from gate.scanners import LineAssembler, ScanEvent
from protocols.reasons import Reason


def texts(events: list[ScanEvent]) -> list[tuple[str | None, Reason]]:
    return [(e.text, e.reason) for e in events]


def test_cr_terminated_codes() -> None:
    asm = LineAssembler("cr")
    assert texts(asm.feed(b"ABC234\rDEF567\r", 1.0)) == [("ABC234", Reason.OK), ("DEF567", Reason.OK)]


def test_line_split_across_reads() -> None:
    asm = LineAssembler("cr")
    assert asm.feed(b"ABC", 1.0) == []
    assert asm.feed(b"23", 1.01) == []
    events = asm.feed(b"4\rXY", 1.02)
    assert texts(events) == [("ABC234", Reason.OK)]
    assert texts(asm.feed(b"Z\r", 1.03)) == [("XYZ", Reason.OK)]


def test_crlf_gives_one_scan_per_line_even_split_between_cr_and_lf() -> None:
    asm = LineAssembler("crlf")
    assert texts(asm.feed(b"ONE\r", 1.0)) == []
    assert texts(asm.feed(b"\nTWO\r\n", 1.1)) == [("ONE", Reason.OK), ("TWO", Reason.OK)]


def test_cr_scanner_that_sends_crlf_reads_cleanly() -> None:
    asm = LineAssembler("cr")
    assert texts(asm.feed(b"ONE\r\nTWO\r\n", 1.0)) == [("ONE", Reason.OK), ("TWO", Reason.OK)]


def test_prefix_and_suffix_are_stripped() -> None:
    asm = LineAssembler("lf", prefix="]Q1", suffix="#")
    assert texts(asm.feed(b"]Q1VR1:ABC#\n", 1.0)) == [("VR1:ABC", Reason.OK)]


def test_binary_garbage_is_malformed_and_next_line_reads() -> None:
    asm = LineAssembler("cr")
    events = asm.feed(b"\xff\xfe\x00\x01\rAB\x07C\rGOOD23\r", 1.0)
    assert texts(events) == [(None, Reason.MALFORMED), (None, Reason.MALFORMED), ("GOOD23", Reason.OK)]


def test_ten_kilobyte_line_is_one_refusal_then_good_line_reads() -> None:
    asm = LineAssembler("cr", max_length=256)
    events: list[ScanEvent] = []
    junk = b"A" * 10_000
    for i in range(0, len(junk), 512):  # arrives in many reads, like a real serial port
        events += asm.feed(junk[i:i + 512], 1.0)
    events += asm.feed(b"\rGOOD23\r", 1.1)
    assert texts(events) == [(None, Reason.TOO_LONG), ("GOOD23", Reason.OK)]


def test_ten_kilobyte_line_in_one_read() -> None:
    asm = LineAssembler("cr", max_length=256)
    events = asm.feed(b"B" * 10_000 + b"\rGOOD23\r", 1.0)
    assert texts(events) == [(None, Reason.TOO_LONG), ("GOOD23", Reason.OK)]


def test_just_over_max_length_is_too_long_and_at_max_is_ok() -> None:
    asm = LineAssembler("cr", max_length=10)
    assert texts(asm.feed(b"A" * 10 + b"\r" + b"A" * 11 + b"\r", 1.0)) == [("A" * 10, Reason.OK),
                                                                            (None, Reason.TOO_LONG)]


def test_gap_terminator_ends_a_line_after_silence() -> None:
    asm = LineAssembler("gap", gap_s=0.05)
    assert asm.feed(b"ABC", 1.000) == []
    assert asm.feed(b"234", 1.020) == []
    assert asm.flush(1.060) == []  # only 40 ms since the last byte
    assert texts(asm.flush(1.071)) == [("ABC234", Reason.OK)]
    assert asm.flush(2.0) == []
    assert asm.feed(b"XYZ", 3.0) == []
    # A new burst after a gap also ends the previous line.
    assert texts(asm.feed(b"QRS", 3.2)) == [("XYZ", Reason.OK)]


def test_empty_lines_and_utf8_text() -> None:
    asm = LineAssembler("lf")
    assert texts(asm.feed("\n\n  \nMã-1\n".encode(), 1.0)) == [("Mã-1", Reason.OK)]


def test_events_carry_source_and_time() -> None:
    event = LineAssembler("cr", source="serial:/dev/x").feed(b"A\r", 12.5)[0]
    assert (event.source, event.received_at) == ("serial:/dev/x", 12.5)


def test_partial_line_without_terminator_ends_after_idle_and_never_swallows_the_next_code() -> None:
    asm = LineAssembler("cr", idle_s=0.3)
    assert asm.feed(b"\xff\xfe#garb", 1.0) == []
    assert asm.flush(1.29) == []  # still within the idle time: the rest of the line may come
    assert texts(asm.flush(1.3)) == [(None, Reason.MALFORMED)]
    assert asm.pending_bytes == 0
    assert texts(asm.feed(b"GOOD23\r", 1.4)) == [("GOOD23", Reason.OK)]


def test_idle_partial_line_ends_when_the_next_bytes_arrive_even_without_a_flush() -> None:
    asm = LineAssembler("lf", idle_s=0.3)
    assert asm.feed(b"half-a-co", 1.0) == []
    assert texts(asm.feed(b"GOOD23\n", 2.0)) == [("half-a-co", Reason.OK), ("GOOD23", Reason.OK)]


def test_idle_ends_an_over_long_line_being_discarded() -> None:
    asm = LineAssembler("cr", max_length=10, idle_s=0.3)
    assert texts(asm.feed(b"A" * 100, 1.0)) == [(None, Reason.TOO_LONG)]
    assert texts(asm.feed(b"GOOD23\r", 2.0)) == [("GOOD23", Reason.OK)]
