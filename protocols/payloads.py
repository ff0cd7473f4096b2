"""Payload models for every MQTT message and the gate snapshot, each with a version field.

All models forbid unknown fields and require timezone-aware datetimes. ``decode`` is the one way in from the
wire: it enforces a size limit and turns any failure into a :class:`PayloadError` carrying a reason code.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from protocols.codes import Scheme
from protocols.reasons import Reason

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
PAYLOAD_VERSION = 1

GateId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
ShortText = Annotated[str, Field(max_length=200)]
ClockOffset = Annotated[float, Field(ge=-1e10, le=1e10, allow_inf_nan=False)]
"""Seconds to add to a gate's clock to get central's (``central - gate``), as the gate estimated it."""


class Outcome(StrEnum):
    """What happened at the turnstile after the decision."""

    ENTERED = "entered"
    NOT_PASSED = "not_passed"
    REFUSED = "refused"
    UNKNOWN = "unknown"  # the gate restarted before the passage sensor confirmed or timed out


class Direction(StrEnum):
    """Which way a gate admits people."""

    IN = "in"
    OUT = "out"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckIn(_Payload):
    """One decision at a gate and its outcome; central stores each ``id`` once."""

    v: Literal[1] = 1
    id: UUID
    gate_id: GateId
    site_id: GateId
    direction: Direction
    scanned_at: AwareDatetime
    allowed: bool
    reason: Reason
    outcome: Outcome
    meeting_id: int | None = None
    delegate_id: int | None = None
    scheme: Scheme | None = None
    credential: Annotated[str, Field(max_length=128)] | None = None
    manual: bool = False
    completed_at: AwareDatetime | None = None
    operator: ShortText | None = None  # who opened it remotely (the Command's issued_by), for manual opens
    command_id: UUID | None = None  # the Command that caused this check-in (a remote open)
    # ``scanned_at`` and ``completed_at`` are the gate's own clock; this is the gate's estimate of central's clock
    # minus its own when it scanned (None: no estimate yet, or a gate older than the field). Central corrects by it.
    clock_offset_s: ClockOffset | None = None


class Ack(_Payload):
    """Central's application-level acknowledgement of a check-in; only this marks it delivered."""

    v: Literal[1] = 1
    checkin_id: UUID
    gate_id: GateId
    status: Literal["stored", "duplicate", "rejected"]
    reason: ShortText | None = None
    # Central's clock when it answered, and the check-in's own gate time echoed (its ``completed_at`` or
    # ``scanned_at``): together a two-sided sample of the gate's clock offset (gate.clock).
    sent_at: AwareDatetime | None = None
    gate_time: AwareDatetime | None = None

    @property
    def rejected(self) -> bool:
        """True when central refused to store the check-in (it will never be stored: the gate stops re-sending)."""
        return self.status == "rejected"


MAX_ACKS_PER_BATCH = 400
"""At most this many acks in one :class:`AckBatch` (about 45 KB, under :data:`MAX_PAYLOAD_BYTES`)."""


class AckBatch(_Payload):
    """Several of central's acks for one gate in one message (the check-ins of one ingest batch).

    Central sends a single :class:`Ack` when a batch holds one check-in of the gate, an ``AckBatch`` otherwise;
    gates read both with :func:`decode_acks`. One PUBLISH per gate per batch instead of one per check-in.
    """

    v: Literal[1] = 1
    gate_id: GateId
    acks: Annotated[list[Ack], Field(min_length=1, max_length=MAX_ACKS_PER_BATCH)]
    sent_at: AwareDatetime | None = None  # central's clock when it sent the batch (once, not per ack)


def decode_acks(raw: bytes | bytearray | str) -> list[Ack]:
    """The acks in one message on a gate's ack topic, an :class:`Ack` or an :class:`AckBatch`.

    Raises :class:`PayloadError` for a bad message, and for a batch naming another gate in any entry than its own.
    A batch's ``sent_at`` is copied into each of its acks that has none.
    """
    text = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if b'"acks"' not in text:
        return [decode(Ack, text)]
    batch = decode(AckBatch, text)
    if any(ack.gate_id != batch.gate_id for ack in batch.acks):
        raise PayloadError(Reason.MALFORMED, "an ack in the batch names another gate than the batch")
    if batch.sent_at is None:
        return batch.acks
    return [ack if ack.sent_at is not None else ack.model_copy(update={"sent_at": batch.sent_at})
            for ack in batch.acks]


class GateMode(StrEnum):
    """A gate's operating mode set by commands: ``lockdown`` refuses every scan, ``release`` holds it open.

    Central labels the same values for its pages (``central.core.states.GateMode``; a test keeps them equal).
    """

    NORMAL = "normal"
    LOCKDOWN = "lockdown"
    RELEASE = "release"


FailMode = Literal["safe", "secure"]


class GateStatus(_Payload):
    """A gate's retained state; the broker publishes ``state="offline"`` as its last will."""

    v: Literal[1] = 1
    gate_id: GateId
    state: Literal["online", "offline"]
    since: AwareDatetime | None = None
    software_version: ShortText | None = None
    emergency: bool = False
    mode: GateMode = GateMode.NORMAL
    fail_mode: FailMode | None = None


class Heartbeat(_Payload):
    """Periodic liveness with the gate's cache sequence and outbox backlog.

    ``sent_at`` is the gate's own clock (central compares it with its receive time); ``clock_offset_s`` is the
    gate's estimate of central's clock minus its own (None: no estimate yet, or a gate older than the field).
    """

    v: Literal[1] = 1
    gate_id: GateId
    sent_at: AwareDatetime
    cache_seq: int = Field(ge=0)
    outbox_pending: int = Field(ge=0)
    emergency: bool = False
    software_version: ShortText
    mode: GateMode = GateMode.NORMAL
    fail_mode: FailMode | None = None
    clock_offset_s: ClockOffset | None = None


MAX_MEETING_SITES = 64


class MeetingEntry(_Payload):
    """What a gate knows of a meeting.

    ``site_id`` is the site of its main hall; ``sites`` every gate site of its venues (the main hall's first, then
    those of its remote points, "điểm cầu"). ``sites`` was added after version 1 shipped: it is left out of the
    JSON when the meeting is at its main hall's site alone (so gates older than the field read such a meeting as
    before), and an entry without it (from an older central or an older gate database) means ``[site_id]``.
    Read :attr:`gate_sites`, never one of the two fields alone.
    """

    id: int
    title: Annotated[str, Field(max_length=500)]
    scheme: Scheme
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    site_id: GateId
    venue: ShortText
    status: Literal["draft", "open", "closed", "held", "cancelled"]
    entry_policy: Literal["single", "reentry", "unlimited"] = "single"
    sites: Annotated[list[GateId], Field(min_length=1, max_length=MAX_MEETING_SITES)] | None = None

    @property
    def gate_sites(self) -> tuple[str, ...]:
        """The gate sites whose gates admit this meeting's delegates (``sites``, or ``site_id`` alone)."""
        return tuple(self.sites) if self.sites else (self.site_id,)


class DelegateEntry(_Payload):
    """What a gate knows of a delegate: display data and, for compact codes, only the code's hash."""

    id: int
    meeting_id: int
    name: ShortText
    organisation: ShortText
    position: ShortText = ""
    code_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    revoked: bool = False


class KeyEntry(_Payload):
    """A public signing key that gates trust for signed codes.

    ``public_key``: Ed25519 (version 1 codes); ``short_key``: secp256k1 (version 2 codes), None for a key
    central has not derived one for (it then issues version 1 codes only).
    """

    key_id: int = Field(ge=0, le=0xFFFF)
    public_key: Annotated[str, Field(max_length=64)]
    revoked: bool = False
    short_key: Annotated[str, Field(max_length=64)] | None = None


class Snapshot(_Payload):
    """Everything a gate needs to decide alone, as of change sequence ``seq`` (sent over HTTP)."""

    v: Literal[1] = 1
    seq: int = Field(ge=0)
    generated_at: AwareDatetime
    meetings: list[MeetingEntry]
    delegates: list[DelegateEntry]
    keys: list[KeyEntry]


SNAPSHOT_STREAM_MEDIA_TYPE = "application/x-ndjson"
SNAPSHOT_FEATURES_HEADER = "X-Vaora-Snapshot-Features"
"""The request header in which a gate lists, comma-separated, the snapshot fields added after version 1 it reads."""
FEATURE_MEETING_SITES = "meeting-sites"
"""A gate that reads :attr:`MeetingEntry.sites`; central sends ``sites`` in a snapshot only to such a gate, so an older
gate keeps loading its snapshot (it then admits a meeting at its main hall's site only, as before)."""
MAX_SNAPSHOT_LINE_BYTES = 16 * 1024


class SnapshotHeader(_Payload):
    """The first line of a snapshot streamed as NDJSON (:data:`SNAPSHOT_STREAM_MEDIA_TYPE`).

    Then come exactly ``meetings`` lines of :class:`MeetingEntry`, ``delegates`` lines of
    :class:`DelegateEntry` and ``keys`` lines of :class:`KeyEntry`, in that order, and a :class:`SnapshotEnd`.
    A receiver validates each line on its own, so it never holds the whole snapshot.
    """

    v: Literal[1] = 1
    seq: int = Field(ge=0)
    generated_at: AwareDatetime
    meetings: int = Field(ge=0)
    delegates: int = Field(ge=0)
    keys: int = Field(ge=0)


class SnapshotEnd(_Payload):
    """The last line of a streamed snapshot: proof that nothing was cut off (it repeats the header's seq)."""

    v: Literal[1] = 1
    end: Literal["snapshot"] = "snapshot"
    seq: int = Field(ge=0)


def encode_snapshot_stream(snapshot: Snapshot) -> Iterator[bytes]:
    """The NDJSON lines (each ending in ``\\n``) of ``snapshot`` streamed: header, entries, end."""
    header = SnapshotHeader(seq=snapshot.seq, generated_at=snapshot.generated_at, meetings=len(snapshot.meetings),
                            delegates=len(snapshot.delegates), keys=len(snapshot.keys))
    yield encode(header) + b"\n"
    for entry in itertools.chain(snapshot.meetings, snapshot.delegates, snapshot.keys):
        yield encode(entry) + b"\n"
    yield encode(SnapshotEnd(seq=snapshot.seq)) + b"\n"


class DelegateUpsert(_Payload):
    """A delegate was added or changed."""

    kind: Literal["delegate_upsert"] = "delegate_upsert"
    delegate: DelegateEntry


class DelegateRevoke(_Payload):
    """A delegate's code was revoked (replaced delegate, cancelled meeting, ...)."""

    kind: Literal["delegate_revoke"] = "delegate_revoke"
    meeting_id: int
    delegate_id: int


class MeetingUpsert(_Payload):
    """A meeting was created or changed (time, venue, status, policy)."""

    kind: Literal["meeting_upsert"] = "meeting_upsert"
    meeting: MeetingEntry


class KeyAdd(_Payload):
    """A signing key was added (key rotation)."""

    kind: Literal["key_add"] = "key_add"
    key: KeyEntry


class KeyRevoke(_Payload):
    """A signing key is no longer trusted."""

    kind: Literal["key_revoke"] = "key_revoke"
    key_id: int = Field(ge=0, le=0xFFFF)


ChangeBody = Annotated[
    DelegateUpsert | DelegateRevoke | MeetingUpsert | KeyAdd | KeyRevoke, Field(discriminator="kind")
]


MAX_SEQ = 2**63 - 1
"""The largest change sequence number (a database bigint)."""


class Change(_Payload):
    """One entry of central's change stream; ``seq`` is central's global sequence number (one per change).

    On the legacy global stream ``seq`` increases by one per change and ``prev`` is absent. On a site's stream
    (``vaora/v1/sites/<site>/changes``) the site gets only its own changes, so ``seq`` jumps; ``prev`` is the
    ``seq`` of the change published to that site before this one (or a larger number that central uses to make
    every gate of the site resync, after a change it could not publish). A gate whose cache is at ``prev`` or
    beyond applies the change; one below ``prev`` missed something and loads a snapshot. ``prev`` < ``seq``.
    """

    v: Literal[1] = 1
    seq: int = Field(ge=1, le=MAX_SEQ)
    at: AwareDatetime
    body: ChangeBody
    prev: int | None = Field(default=None, ge=0, le=MAX_SEQ, strict=True)

    @model_validator(mode="after")
    def _prev_before_seq(self) -> Change:
        if self.prev is not None and self.prev >= self.seq:
            raise ValueError(f"prev {self.prev} must be below seq {self.seq}")
        return self


CommandAction = Literal["open", "lockdown", "release", "resume", "resync"]
COMMAND_ACTIONS: tuple[str, ...] = ("open", "lockdown", "release", "resume", "resync")


class Command(_Payload):
    """An order from central to one gate.

    ``open``: one manual turnstile cycle, recorded as a manual check-in naming ``issued_by`` (and the admitted
    walk-in's ``meeting_id`` / ``delegate_id`` when given). ``lockdown``: refuse every scan until ``resume``.
    ``release``: hold the turnstile open like the emergency input until ``resume``. ``resync``: fetch a fresh
    snapshot. Gates refuse a command older than their max age (or that far in the future).
    """

    v: Literal[1] = 1
    id: UUID
    gate_id: GateId
    action: CommandAction
    issued_by: ShortText
    issued_at: AwareDatetime
    note: ShortText | None = None
    meeting_id: int | None = None
    delegate_id: int | None = None
    # Central's clock minus the gate's, as central measured it from the gate's heartbeats; the gate judges the
    # command's age by it when it has no estimate of its own yet (just booted, nothing acknowledged).
    gate_clock_offset_s: ClockOffset | None = None


class CommandResult(_Payload):
    """A gate's answer to a command."""

    v: Literal[1] = 1
    command_id: UUID
    gate_id: GateId
    ok: bool
    reason: ShortText | None = None
    mode: GateMode | None = None  # the gate's mode after handling the command
    checkin_id: UUID | None = None  # the manual check-in an ``open`` recorded


MODELS: dict[str, type[BaseModel]] = {
    "checkin": CheckIn,
    "ack": Ack,
    "ack_batch": AckBatch,
    "gate_status": GateStatus,
    "heartbeat": Heartbeat,
    "snapshot": Snapshot,
    "snapshot_header": SnapshotHeader,
    "snapshot_end": SnapshotEnd,
    "change": Change,
    "command": Command,
    "command_result": CommandResult,
}


class PayloadError(ValueError):
    """A payload from the wire was refused; ``reason`` says why in a reason code."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


M = TypeVar("M", bound=BaseModel)


def decode(model: type[M], raw: bytes | bytearray | str, max_bytes: int | None = None) -> M:
    """Parse and validate one payload. Raises :class:`PayloadError` and nothing else.

    ``max_bytes`` defaults to :data:`MAX_PAYLOAD_BYTES` for MQTT payloads and :data:`MAX_SNAPSHOT_BYTES` for
    a :class:`Snapshot`.
    """
    limit = max_bytes or (MAX_SNAPSHOT_BYTES if model is Snapshot else MAX_PAYLOAD_BYTES)
    try:
        size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
        if size > limit:
            raise PayloadError(Reason.TOO_LONG, f"{size} bytes > {limit}")
        return model.model_validate_json(raw)
    except PayloadError:
        raise
    except ValidationError as exc:
        errors = exc.errors()
        kinds = {err["type"] for err in errors}
        if "json_invalid" in kinds:
            raise PayloadError(Reason.MALFORMED, "not JSON") from None
        if any(err["loc"] == () and err["type"] == "model_type" for err in errors):
            raise PayloadError(Reason.MALFORMED, "not a JSON object") from None
        if any(err["loc"] == ("v",) for err in errors):
            raise PayloadError(Reason.UNSUPPORTED_VERSION, f"expected version {PAYLOAD_VERSION}") from None
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in errors[:5]
        )
        raise PayloadError(Reason.MALFORMED, problems) from None
    except Exception as exc:
        raise PayloadError(Reason.MALFORMED, repr(exc)) from None


ACK_CLOCK_FIELDS = frozenset({"sent_at", "gate_time"})
"""An ack's clock fields: central's clock when it answered, and the check-in's gate time echoed."""

_OMITTED_WHEN_NONE: dict[type[BaseModel], frozenset[str]] = {
    Ack: ACK_CLOCK_FIELDS,
    AckBatch: frozenset({"sent_at"}),
    Command: frozenset({"gate_clock_offset_s"}),
    MeetingEntry: frozenset({"sites"}),
    Change: frozenset({"prev"}),
}
"""Fields added after version 1 shipped, left out when empty so that older gates, whose models forbid unknown
fields, still read these payloads (also inside a change, a snapshot or a batch). ``CheckIn.clock_offset_s`` and
``Heartbeat.clock_offset_s`` are always sent by gates that measure their clock (null without an estimate): central
answers with clock fields only then. ``MeetingEntry.sites`` is sent only for a meeting at more than one site;
``Change.prev`` only on a site's change stream (the legacy global stream is read by gates older than it)."""


def _empty_clock_fields(payload: BaseModel) -> dict[str, Any]:
    """The ``exclude`` argument that leaves out :data:`_OMITTED_WHEN_NONE` fields, in nested payloads too."""
    exclude: dict[str, Any] = {name: True for name in _OMITTED_WHEN_NONE.get(type(payload), ())
                               if getattr(payload, name) is None}
    for name in type(payload).model_fields:
        value = getattr(payload, name)
        if isinstance(value, BaseModel):
            if nested := _empty_clock_fields(value):
                exclude[name] = nested
        elif isinstance(value, list) and value and type(value[0]) in _OMITTED_WHEN_NONE:  # acks, meetings
            per_item = {index: _empty_clock_fields(item) for index, item in enumerate(value)}
            if items := {index: fields for index, fields in per_item.items() if fields}:
                exclude[name] = items
    return exclude


def encode(payload: BaseModel) -> bytes:
    """Serialise a payload as compact JSON bytes (empty clock fields of acks and commands left out)."""
    return payload.model_dump_json(exclude_none=False, exclude=_empty_clock_fields(payload) or None).encode("utf-8")


def encode_ack_batch(gate_id: str, acks: Sequence[Ack], sent_at: datetime | None) -> bytes:
    """``acks`` (at most :data:`MAX_ACKS_PER_BATCH`, all for ``gate_id``) as one :class:`AckBatch` message, each ack
    without its :data:`ACK_CLOCK_FIELDS`, ``sent_at`` once for the batch (left out when None): central's clock goes
    once on the batch, and the per-check-in echo of the gate's time would not fit ``MAX_ACKS_PER_BATCH`` acks under
    the payload limit (a gate measures its clock offset from single acks).

    The same bytes as :func:`encode` of a batch of acks copied without those fields, without copying them: the
    ingest answers every batch of check-ins this way, so the copies and the per-ack walk of :func:`encode` were
    a tenth of its work per check-in (benchmarks/ingest_rate.py)."""
    batch = AckBatch(gate_id=gate_id, acks=list(acks), sent_at=sent_at)
    exclude: dict[str, Any] = {"acks": {"__all__": set(ACK_CLOCK_FIELDS)}}
    if sent_at is None:
        exclude["sent_at"] = True
    return batch.model_dump_json(exclude=exclude).encode("utf-8")


def encode_site_checkin(checkin: CheckIn) -> bytes:
    """A check-in as published on its site's topic, for the other gates: without its clock offset, which they do
    not need and which gates older than the field would refuse."""
    return checkin.model_dump_json(exclude_none=False, exclude={"clock_offset_s"}).encode("utf-8")


def measures_clock(payload: CheckIn | Heartbeat) -> bool:
    """True when the gate that sent ``payload`` measures its clock offset (it sent ``clock_offset_s``, even null):
    only such a gate may be sent acks and commands with clock fields."""
    return "clock_offset_s" in payload.model_fields_set
