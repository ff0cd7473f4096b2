"""Fetch the gate's snapshot from central over HTTP (authenticated per gate).

Failures raise :class:`SyncError` with a reason code: ``unauthorised``, ``unreachable`` or ``malformed``,
so the gate can log it and keep deciding from its existing cache. The MQTT change stream comes in a later
issue.
"""

from __future__ import annotations

import logging
from enum import StrEnum

import requests

from protocols.payloads import MAX_SNAPSHOT_BYTES, PayloadError, Snapshot, decode
from protocols.topics import is_valid_id

log = logging.getLogger(__name__)


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


def fetch_snapshot(base_url: str, gate_id: str, token: str | None, timeout: float,
                   session: requests.Session | None = None) -> Snapshot:
    """GET the gate's snapshot with ``Authorization: Bearer <token>``; raise SyncError on any failure."""
    if not is_valid_id(gate_id):
        raise SyncError(SyncFailure.MALFORMED, f"invalid gate id {gate_id!r}")
    if not token:
        raise SyncError(SyncFailure.UNAUTHORISED, "no API token configured")
    url = snapshot_url(base_url, gate_id)
    http = session or requests
    try:
        response = http.get(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                            timeout=timeout, stream=True)
    except requests.RequestException as exc:
        raise SyncError(SyncFailure.UNREACHABLE, f"{url}: {type(exc).__name__}") from None
    with response:
        if response.status_code in (401, 403):
            raise SyncError(SyncFailure.UNAUTHORISED, f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise SyncError(SyncFailure.UNREACHABLE, f"HTTP {response.status_code}")
        try:
            body = _read_limited(response, MAX_SNAPSHOT_BYTES)
        except requests.RequestException as exc:
            raise SyncError(SyncFailure.UNREACHABLE, f"reading body: {type(exc).__name__}") from None
    try:
        return decode(Snapshot, body)
    except PayloadError as exc:
        raise SyncError(SyncFailure.MALFORMED, str(exc)) from None


def _read_limited(response: requests.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=256 * 1024):
        size += len(chunk)
        if size > limit:
            raise SyncError(SyncFailure.MALFORMED, f"snapshot larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
