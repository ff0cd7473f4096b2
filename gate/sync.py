"""Fetch the gate's snapshot from central over HTTP (authenticated per gate), streamed line by line.

The gate asks for ``application/x-ndjson``: central answers with a :class:`~protocols.payloads.SnapshotHeader`
line, one line per meeting, delegate and key entry, and a :class:`~protocols.payloads.SnapshotEnd` line
(see :func:`protocols.payloads.encode_snapshot_stream`). :func:`fetch_snapshot` reads and checks the header
and returns a :class:`SnapshotStream`; the cache then pulls the entries one at a time
(:meth:`gate.store.GateStore.load_snapshot`), each validated on its own, so a 100,000-delegate snapshot is never
held in memory. Every line is checked: its model, its place (the header's counts), its size; the end line must
come last and repeat the header's ``seq``. A bad line or a cut stream raises :class:`SyncError` half-way, and
the cache keeps what it had (it swaps a snapshot in only once the whole stream was read).

A central that answers ``application/json`` (one :class:`~protocols.payloads.Snapshot` document, as before
the streamed form existed) is still understood; that snapshot is decoded whole.

Failures raise :class:`SyncError` with a reason code: ``unauthorised``, ``unreachable`` or ``malformed``,
so the gate can log it and keep deciding from its existing cache.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import TypeVar, cast

import requests
from pydantic import BaseModel

from protocols.payloads import (
    FEATURE_MEETING_SITES,
    MAX_SNAPSHOT_BYTES,
    MAX_SNAPSHOT_LINE_BYTES,
    SNAPSHOT_FEATURES_HEADER,
    SNAPSHOT_STREAM_MEDIA_TYPE,
    DelegateEntry,
    KeyEntry,
    MeetingEntry,
    PayloadError,
    Snapshot,
    SnapshotEnd,
    SnapshotHeader,
    decode,
)
from protocols.topics import is_valid_id

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024

M = TypeVar("M", bound=BaseModel)
Entry = MeetingEntry | DelegateEntry | KeyEntry


class SyncFailure(StrEnum):
    """Why a snapshot could not be loaded."""

    UNAUTHORISED = "unauthorised"
    UNREACHABLE = "unreachable"
    MALFORMED = "malformed"


class SyncError(Exception):
    """The snapshot could not be fetched; ``reason`` is a :class:`SyncFailure`."""

    def __init__(self, reason: SyncFailure, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def snapshot_url(base_url: str, gate_id: str) -> str:
    """The snapshot endpoint of one gate."""
    return f"{base_url.rstrip('/')}/api/v1/gates/{gate_id}/snapshot"


def _lines(chunks: Iterator[bytes], max_line: int, max_total: int) -> Iterator[bytes]:
    """Split a byte stream into lines (without ``\\n``); SyncError(MALFORMED) for an overlong line or body."""
    pending = b""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_total:
            raise SyncError(SyncFailure.MALFORMED, f"snapshot larger than {max_total} bytes")
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            if end - start > max_line:
                raise SyncError(SyncFailure.MALFORMED, f"a snapshot line is longer than {max_line} bytes")
            yield pending[start:end]
            start = end + 1
        pending = pending[start:]
        if len(pending) > max_line:
            raise SyncError(SyncFailure.MALFORMED, f"a snapshot line is longer than {max_line} bytes")
    if pending.strip():
        yield pending  # no final newline: still checked (it cannot be a valid end line and entries after it)


class SnapshotStream:
    """A snapshot being received: the header is read, the entries come one by one from the open response.

    Implements :class:`gate.store.SnapshotSource`. ``entries()`` may be iterated once; it raises SyncError
    (``malformed`` or ``unreachable``) as soon as something is wrong. Close it (or use ``with``) when done.
    """

    def __init__(self, response: requests.Response, lines: Iterator[bytes], header: SnapshotHeader) -> None:
        self._response = response
        self._lines = lines
        self.header = header
        self._consumed = False
        self.lines_read = 1

    @property
    def seq(self) -> int:
        """The change sequence the snapshot reflects."""
        return self.header.seq

    @property
    def generated_at(self) -> datetime:
        """When central generated the snapshot."""
        return self.header.generated_at

    def entries(self) -> Iterator[Entry]:
        """Each entry, validated, in the stream's order: meetings, delegates, keys; then the end is checked."""
        if self._consumed:
            raise RuntimeError("a snapshot stream can be read once")
        self._consumed = True
        header = self.header
        sections: tuple[tuple[str, type[BaseModel], int], ...] = (
            ("meeting", MeetingEntry, header.meetings), ("delegate", DelegateEntry, header.delegates),
            ("key", KeyEntry, header.keys))
        try:
            for kind, model, count in sections:
                for index in range(count):
                    line = self._next_line(f"{kind} {index + 1} of {count}")
                    yield cast(Entry, self._decode(model, line, f"{kind} {index + 1} of {count}"))
            end = self._decode(SnapshotEnd, self._next_line("the end line"), "the end line")
            if end.seq != header.seq:
                raise SyncError(SyncFailure.MALFORMED, f"end line seq {end.seq} != header seq {header.seq}")
            for extra in self._lines:
                if extra.strip():
                    raise SyncError(SyncFailure.MALFORMED, f"line {self.lines_read + 1}: data after the end line")
        except requests.RequestException as exc:
            raise SyncError(SyncFailure.UNREACHABLE, f"reading the snapshot: {type(exc).__name__}") from None
        finally:
            self.close()

    def _next_line(self, what: str) -> bytes:
        line = next(self._lines, None)
        if line is None:
            raise SyncError(SyncFailure.MALFORMED, f"snapshot cut off after line {self.lines_read}: "
                                                   f"{what} missing")
        self.lines_read += 1
        return line

    def _decode(self, model: type[M], line: bytes, what: str) -> M:
        try:
            return decode(model, line, max_bytes=MAX_SNAPSHOT_LINE_BYTES)
        except PayloadError as exc:
            raise SyncError(SyncFailure.MALFORMED, f"line {self.lines_read} ({what}) refused, "
                                                   f"{exc.reason.value}: {exc.detail[:300]}") from None

    def close(self) -> None:
        """Release the HTTP connection (idempotent)."""
        self._response.close()

    def __enter__(self) -> SnapshotStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def fetch_snapshot(base_url: str, gate_id: str, token: str | None, timeout: float,
                   session: requests.Session | None = None) -> SnapshotStream | Snapshot:
    """GET the gate's snapshot with ``Authorization: Bearer <token>``; raise SyncError on any failure. The gate
    says it reads the meetings' ``sites`` (:data:`protocols.payloads.FEATURE_MEETING_SITES`).

    Returns a :class:`SnapshotStream` (header checked, entries still to read) when central streams it, or a
    decoded :class:`Snapshot` when central sends one JSON document.
    """
    if not is_valid_id(gate_id):
        raise SyncError(SyncFailure.MALFORMED, f"invalid gate id {gate_id!r}")
    if not token:
        raise SyncError(SyncFailure.UNAUTHORISED, "no API token configured")
    url = snapshot_url(base_url, gate_id)
    http = session or requests
    accept = f"{SNAPSHOT_STREAM_MEDIA_TYPE}, application/json;q=0.5"
    try:
        response = http.get(url, headers={"Authorization": f"Bearer {token}", "Accept": accept,
                                          SNAPSHOT_FEATURES_HEADER: FEATURE_MEETING_SITES},
                            timeout=timeout, stream=True)
    except requests.RequestException as exc:
        raise SyncError(SyncFailure.UNREACHABLE, f"{url}: {type(exc).__name__}") from None
    try:
        if response.status_code in (401, 403):
            raise SyncError(SyncFailure.UNAUTHORISED, f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise SyncError(SyncFailure.UNREACHABLE, f"HTTP {response.status_code}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        chunks = response.iter_content(chunk_size=CHUNK_BYTES)
        if media_type == SNAPSHOT_STREAM_MEDIA_TYPE:
            lines = _lines(chunks, MAX_SNAPSHOT_LINE_BYTES, MAX_SNAPSHOT_BYTES)
            first = next(lines, None)
            if first is None:
                raise SyncError(SyncFailure.MALFORMED, "empty snapshot stream")
            try:
                header = decode(SnapshotHeader, first, max_bytes=MAX_SNAPSHOT_LINE_BYTES)
            except PayloadError as exc:
                raise SyncError(SyncFailure.MALFORMED, f"line 1 (the header) refused, {exc.reason.value}: "
                                                       f"{exc.detail[:300]}") from None
            return SnapshotStream(response, lines, header)
        body = _read_limited(chunks, MAX_SNAPSHOT_BYTES)
    except requests.RequestException as exc:
        response.close()
        raise SyncError(SyncFailure.UNREACHABLE, f"reading body: {type(exc).__name__}") from None
    except BaseException:
        response.close()
        raise
    response.close()
    try:
        return decode(Snapshot, body)
    except PayloadError as exc:
        raise SyncError(SyncFailure.MALFORMED, str(exc)) from None


def _read_limited(chunks: Iterator[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise SyncError(SyncFailure.MALFORMED, f"snapshot larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)
