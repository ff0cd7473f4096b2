"""Check-in ingest: store each gate check-in once (by its UUID) and answer with an Ack; gate liveness and clock.

A check-in's times are the gate's clock; central stores them corrected to its own (:func:`central.gates.clock.
arrival`), keeps the gate's raw ``scanned_at`` and flags a time that was absurd. Each Ack carries central's clock
(``sent_at``) and echoes the check-in's gate time (``gate_time``): the gate measures its clock offset from them.

A check-in central cannot store (a poison message) never holds up the others of its batch: a value the database
cannot hold is refused before the transaction (:func:`unstorable`), and when the database refuses the batch's
write anyway the check-ins are stored one by one, each in its own savepoint, so that only the one it refuses is
answered ``rejected`` (see :func:`store_checkins`).

Once a batch is committed, its stored check-ins are flagged (:func:`flag_stored`): conflicts
(:mod:`central.gates.conflicts`) and forced-door alarms (:mod:`central.gates.alarms`), in their own transaction, so
a failure there is logged and never loses a check-in. Heartbeats and statuses raise and clear emergency alarms.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import peewee

from central.core.db import database, statement, write_transaction
from central.core.models import BaseModel
from central.core.states import GateLinkState
from central.gates import alarms, conflicts
from central.gates.clock import arrival, heartbeat_clock, storable
from central.gates.models import CheckIn, Gate
from central.meetings.models import Meeting
from central.registration.models import Delegate
from protocols import payloads
from protocols.reasons import Reason

log = logging.getLogger(__name__)

REJECT_GATE_MISMATCH = Reason.GATE_MISMATCH.value
REJECT_UNKNOWN_GATE = Reason.UNKNOWN_GATE.value
REJECT_UNSTORABLE = Reason.MALFORMED.value
"""The reason of a check-in with a value central's database cannot hold (:func:`unstorable`)."""
REJECT_REFUSED_BY_DATABASE = Reason.INTERNAL_ERROR.value
"""The reason of a check-in the database refused when it was written alone (a poison that passed validation)."""

DB_INT_MIN, DB_INT_MAX = -(2**63), 2**63 - 1
"""The range of a 64-bit integer column (SQLite's INTEGER, PostgreSQL's bigint)."""
POISON_ERRORS: tuple[type[Exception], ...] = (peewee.DataError, peewee.IntegrityError, OverflowError, ValueError,
                                              TypeError)
"""What a database raises (or a driver, binding a value) for a row it will never accept. Anything else (a lost
connection, a lock held too long) is raised to the caller, which retries the whole batch later."""
_AS_PEEWEE_ERRORS = peewee.__exception_wrapper__  # type: ignore[attr-defined]
"""Turns the driver's errors into peewee's (as peewee's own ``execute_sql`` does), for a cursor used directly."""


def store_checkin(payload: payloads.CheckIn, topic_gate_id: str | None, now: datetime) -> payloads.Ack:
    """Store ``payload`` once and return the Ack for the gate (see :func:`store_checkins`)."""
    return store_checkins([(payload, topic_gate_id)], now)[0]


def store_checkins(
    items: Sequence[tuple[payloads.CheckIn, str | None]], now: datetime
) -> list[payloads.Ack]:
    """Store a batch of check-ins in one transaction; return one Ack per item, in order.

    The gate id in the topic must equal ``payload.gate_id`` and name a registered gate, else the Ack is
    ``rejected`` with a reason. A check-in id seen before (earlier, or earlier in the batch) is ``duplicate``
    and changes nothing. Meeting and delegate ids unknown to central are kept as null (the credential is still
    stored). Uniqueness rests on the database's unique index, so concurrent workers never store one id twice.

    Poison is answered alone: a check-in with a value the database cannot hold (:func:`unstorable`) is
    ``rejected`` (``malformed``) before the transaction; when the database refuses the batch's write with one of
    :data:`POISON_ERRORS`, the check-ins are written again one by one, each in a savepoint, and the one it still
    refuses is ``rejected`` (``internal_error``). Any other database error (connection lost, lock timeout) is
    raised, with nothing of the batch stored.
    """
    acks: list[payloads.Ack | None] = [None] * len(items)
    candidates: list[tuple[int, payloads.CheckIn]] = []
    for index, (payload, topic_gate_id) in enumerate(items):
        problem = unstorable(payload)
        if topic_gate_id != payload.gate_id:
            log.warning("checkin rejected: topic gate %s != payload gate %s", topic_gate_id, payload.gate_id)
            acks[index] = _ack(payload, "rejected", REJECT_GATE_MISMATCH, now)
        elif problem is not None:
            log.warning("checkin %s gate=%s rejected reason=%s detail=%s", payload.id, payload.gate_id,
                        REJECT_UNSTORABLE, problem)
            acks[index] = _ack(payload, "rejected", REJECT_UNSTORABLE, now)
        else:
            candidates.append((index, payload))
    if candidates:
        try:
            # BEGIN IMMEDIATE on SQLite: with several ingest processes, a deferred transaction that read and then
            # writes fails at once (SQLITE_BUSY) when another wrote in between; this one waits its turn instead.
            with write_transaction():
                _store_candidates(candidates, acks, now)
        except POISON_ERRORS as error:
            log.warning("checkin batch of %d refused by the database (%s); storing them one by one",
                        len(candidates), _describe(error))
            _store_one_by_one(candidates, acks, now)
        stored = [payload for index, payload in candidates if (ack := acks[index]) is not None and ack.status ==
                  "stored"]
        flag_stored(stored, now)
    return [ack for ack in acks if ack is not None]


def flag_stored(stored: Sequence[payloads.CheckIn], now: datetime) -> None:
    """Record the conflicts and forced-door alarms of check-ins just committed, in a transaction of their own.

    After the commit, not inside it: two workers storing the two entries of one pair at once would each miss the
    other's uncommitted row; after both commits, the later one sees both. A failure is logged, never raised: the
    check-ins are stored and will be acknowledged (``vaora-central conflicts --rescan`` records what was missed).
    """
    entries = [p.id for p in stored if p.allowed and p.meeting_id is not None and p.delegate_id is not None]
    forced = [p.id for p in stored if p.reason is Reason.DOOR_FORCED]
    if not entries and not forced:
        return
    try:
        with database.atomic():
            if entries:
                conflicts.record_conflicts(entries, now)
            if forced:
                alarms.record_forced_doors(forced, now)
    except Exception:  # flagging is secondary: the check-ins are stored whatever happens here
        log.exception("conflicts and alarms not recorded for %d check-ins", len(stored))


def unstorable(payload: payloads.CheckIn) -> str | None:
    """Why central's database cannot hold ``payload`` (which field, out of what range), or None when it can.

    The payload models accept any integer; the database's columns hold 64 bits, and a meeting or delegate id
    beyond them cannot even be looked up. Times and texts need no check here: :func:`central.gates.clock.arrival`
    keeps times storable and the payload models bound texts to the columns' lengths."""
    for name in ("meeting_id", "delegate_id"):
        value = getattr(payload, name)
        if value is not None and not DB_INT_MIN <= value <= DB_INT_MAX:
            return f"{name} out of the 64-bit range"
    return None


def _store_one_by_one(
    candidates: list[tuple[int, payloads.CheckIn]], acks: list[payloads.Ack | None], now: datetime
) -> None:
    """The fallback of a batch the database refused: each check-in in its own savepoint of one transaction."""
    with write_transaction():
        for index, payload in candidates:
            try:
                with database.atomic():  # a savepoint: a refused row leaves the others of the batch intact
                    _store_candidates([(index, payload)], acks, now)
            except POISON_ERRORS as error:
                log.warning("checkin %s gate=%s rejected reason=%s detail=%s", payload.id, payload.gate_id,
                            REJECT_REFUSED_BY_DATABASE, _describe(error))
                acks[index] = _ack(payload, "rejected", REJECT_REFUSED_BY_DATABASE, now)


def _describe(error: Exception) -> str:
    """One line naming a database error, for the log (the first line of its message, cut to 200 characters)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


def _chunks(values: list[Any], size: int = 400) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _existing(model: type[BaseModel], field: peewee.Field[Any], values: set[Any]) -> set[Any]:
    """Which of ``values`` (Python values of ``field``) ``model`` holds: on PostgreSQL in one statement with the
    values as one array (:func:`_lookup_any`), elsewhere in chunks of 400 (one ``IN`` statement each)."""
    if not values:
        return set()
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        sql = statement(("existing, any", model, field.name), partial(_lookup_any, model, field))
        lookups = [(sql, [[field.db_value(value) for value in values]])]
    else:
        lookups = [(statement(("existing", model, field.name, len(chunk)), partial(_lookup, model, field, len(chunk))),
                    [field.db_value(value) for value in chunk]) for chunk in _chunks(sorted(values, key=str))]
    found: set[Any] = set()
    for sql, params in lookups:
        with _AS_PEEWEE_ERRORS:
            rows = database.cursor().execute(sql, params).fetchall()
        found.update(field.python_value(row[0]) for row in rows)
    return found


def _lookup(model: type[BaseModel], field: peewee.Field[Any], size: int) -> peewee.Query:
    """The query of :func:`_existing` for ``size`` values."""
    return model.select(field).where(field.in_([None] * size))


def _column_types(model: type[BaseModel]) -> dict[str, str]:
    """PostgreSQL: each column of ``model``'s table and its type as the server names it (``format_type``)."""
    cursor = database.execute_sql(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (model._meta.table_name,))
    return dict(cursor.fetchall())


def _lookup_any(model: type[BaseModel], field: peewee.Field[Any]) -> str:
    """PostgreSQL: the query of :func:`_existing` with its values as one array. Integers are looked up as
    ``bigint``: a payload may name any 64-bit id, and one beyond an ``integer`` column is simply not there. With
    400 parameters to an ``IN`` list the server spent as much CPU per check-in as the ingest itself; with one array
    half of that (benchmarks/ingest_store_cpu.py)."""
    column_type = _column_types(model)[field.column_name]
    if column_type in {"smallint", "integer"}:
        column_type = "bigint"
    return (f'SELECT "{field.column_name}" FROM "{model._meta.table_name}" '
            f'WHERE "{field.column_name}" = ANY(%s::{column_type}[])')


def _store_candidates(
    candidates: list[tuple[int, payloads.CheckIn]], acks: list[payloads.Ack | None], now: datetime
) -> None:
    gate_ids = {payload.gate_id for _, payload in candidates}
    gates = {gate.gate_id: gate for gate in Gate.select(Gate.id, Gate.gate_id, Gate.clock_offset_s,
                                                         Gate.clock_suspect)
             .where(Gate.gate_id.in_(list(gate_ids)))}
    meetings = _existing(Meeting, Meeting.id,
                         {p.meeting_id for _, p in candidates if p.meeting_id is not None})
    delegates = _existing(Delegate, Delegate.id,
                          {p.delegate_id for _, p in candidates if p.delegate_id is not None})
    already = _existing(CheckIn, CheckIn.checkin_id, {p.id for _, p in candidates})
    rows: list[dict[str, Any]] = []
    seen_gates: set[int] = set()
    for index, payload in candidates:
        gate = gates.get(payload.gate_id)
        if gate is None:
            log.warning("checkin rejected: unknown gate %s", payload.gate_id)
            acks[index] = _ack(payload, "rejected", REJECT_UNKNOWN_GATE, now)
            continue
        gate_pk = gate.id
        seen_gates.add(gate_pk)
        if payload.id in already:
            acks[index] = _ack(payload, "duplicate", None, now)
            continue
        already.add(payload.id)
        meeting_id = payload.meeting_id if payload.meeting_id in meetings else None
        delegate_id = payload.delegate_id if payload.delegate_id in delegates else None
        if meeting_id != payload.meeting_id or delegate_id != payload.delegate_id:
            log.warning("checkin %s names unknown meeting %s or delegate %s", payload.id, payload.meeting_id,
                        payload.delegate_id)
        corrected = arrival(payload.scanned_at, now, payload.clock_offset_s,
                            None if gate.clock_suspect else gate.clock_offset_s)
        if corrected.suspect:
            log.warning("checkin %s gate=%s clock suspect: gate time %s stored as %s", payload.id, payload.gate_id,
                        _iso(payload.scanned_at), corrected.at.isoformat())
        rows.append(
            {
                "checkin_id": payload.id,
                "gate": gate_pk,
                "meeting": meeting_id,
                "delegate": delegate_id,
                "allowed": payload.allowed,
                "reason": payload.reason.value,
                "outcome": payload.outcome.value,
                "direction": payload.direction.value,
                "scheme": payload.scheme.value if payload.scheme else None,
                "scanned_at": corrected.at,
                "completed_at": corrected.apply(payload.completed_at),
                "received_at": now,
                "gate_scanned_at": storable(payload.scanned_at),
                "clock_offset_s": corrected.offset_s,
                "clock_suspect": corrected.suspect,
                "manual": payload.manual,
                "credential": payload.credential,
                "operator": payload.operator,
                "command_id": payload.command_id,
            }
        )
        acks[index] = _ack(payload, "stored", None, now)
        log.debug("checkin %s gate=%s stored reason=%s", payload.id, payload.gate_id, payload.reason)
    _insert_ignoring_duplicates(rows)
    if seen_gates:
        Gate.update(last_seen_at=now).where(Gate.id.in_(list(seen_gates))).execute()


def _insert_ignoring_duplicates(rows: list[dict[str, Any]]) -> None:
    """Insert check-in rows (all with the same keys) with one statement; a check-in id already present is skipped.

    The statement's text is built once per set of columns (:func:`central.core.db.statement`); building
    ``insert_many`` SQL row by row was two thirds of the ingest's store time (benchmarks/ingest_rate.py). The
    parameters are assembled a column at a time, each column passed through its field's ``db_value`` where that
    changes a value (UUIDs, times; :func:`_converted`). On PostgreSQL the rows go in as one array per column,
    unnested by the server (:func:`_unnest_insert`); elsewhere one prepared statement runs per row
    (``executemany``)."""
    if not rows:
        return
    names = tuple(rows[0])
    fields = [CheckIn._meta.fields[name] for name in names]
    columns = []
    for field in fields:
        column = [row[field.name] for row in rows]
        columns.append(list(map(field.db_value, column)) if _converted(field) else column)
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        sql = statement(("insert ignoring duplicates, unnested", CheckIn, names), partial(_unnest_insert, fields))
        with _AS_PEEWEE_ERRORS:
            database.cursor().execute(sql, columns)
        return
    sql = statement(("insert ignoring duplicates", CheckIn, names),
                    lambda: CheckIn.insert_many([tuple(rows[0][name] for name in names)], fields=fields)
                    .on_conflict_ignore())
    with _AS_PEEWEE_ERRORS:
        database.cursor().executemany(sql, list(zip(*columns, strict=True)))


def _unnest_insert(fields: list[peewee.Field[Any]]) -> str:
    """PostgreSQL: ``INSERT ... SELECT * FROM unnest(%s::type[], ...) ON CONFLICT DO NOTHING`` for ``fields``, each
    array cast to its column's type: one statement for the whole batch, where ``executemany`` runs one per row (a
    quarter less of the server's CPU per check-in, benchmarks/ingest_store_cpu.py)."""
    types = _column_types(CheckIn)
    quoted = ", ".join(f'"{field.column_name}"' for field in fields)
    arrays = ", ".join(f"%s::{types[field.column_name]}[]" for field in fields)
    return f'INSERT INTO "{CheckIn._meta.table_name}" ({quoted}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING'


def _converted(field: peewee.Field[Any]) -> bool:
    """Whether a check-in row's value for ``field`` needs the field's ``db_value``: UUIDs (stored as text on
    SQLite) and times (stored as naive UTC). Texts, flags, numbers and keys come from a validated payload already
    of their column's type, for which ``db_value`` returns them unchanged."""
    return isinstance(field, peewee.UUIDField | peewee.DateTimeField)


def _iso(at: datetime) -> str:
    try:
        return at.astimezone(UTC).isoformat()
    except OverflowError:
        return at.isoformat()


def _ack(payload: payloads.CheckIn, status: str, reason: str | None, now: datetime) -> payloads.Ack:
    if not payloads.measures_clock(payload):  # an older gate: its Ack model refuses fields it does not know
        return payloads.Ack(checkin_id=payload.id, gate_id=payload.gate_id, status=status, reason=reason)
    # ``now`` precedes the ack's publication, so it stays a lower bound of central's clock when it leaves.
    return payloads.Ack(checkin_id=payload.id, gate_id=payload.gate_id, status=status, reason=reason,
                        sent_at=now, gate_time=payload.completed_at or payload.scanned_at)


def _reported_modes(payload: payloads.Heartbeat | payloads.GateStatus) -> dict[str, str]:
    """The gate's operating ``mode`` and wiring ``fail_mode`` when its payload carries them (fleet page)."""
    reported = {name: getattr(payload, name, None) for name in ("mode", "fail_mode")}
    return {name: str(value) for name, value in reported.items() if value is not None}


def _note_emergency(gate_id: str, active: bool, now: datetime) -> None:
    """Raise or clear the gate's emergency alarm (:func:`central.gates.alarms.record_emergency`); a failure is
    logged and never stops the heartbeat or status from being recorded."""
    try:
        with database.atomic():
            alarms.record_emergency(gate_id, active, now)
    except Exception:
        log.exception("emergency alarm not recorded gate=%s active=%s", gate_id, active)


def record_heartbeat(payload: payloads.Heartbeat, topic_gate_id: str | None, now: datetime) -> Reason:
    """Update the gate's liveness, cache sequence, version and clock offset from a heartbeat; returns OK or why
    not. A clock years off is stored flagged (``clock_suspect``) and not used to correct check-ins. The emergency
    input's state raises or clears the gate's emergency alarm."""
    if topic_gate_id != payload.gate_id:
        return Reason.MALFORMED
    _note_emergency(payload.gate_id, payload.emergency, now)
    clock = heartbeat_clock(payload.sent_at, now)
    if clock.suspect:
        log.warning("gate clock suspect gate=%s gate_time=%s offset_s=%.0f", payload.gate_id,
                    _iso(payload.sent_at), clock.offset_s)
    updated = (
        Gate.update(
            clock_offset_s=clock.offset_s,
            clock_reported_offset_s=payload.clock_offset_s,
            clock_suspect=clock.suspect,
            measures_clock=payloads.measures_clock(payload),
            last_seen_at=now,
            cache_seq=payload.cache_seq,
            outbox_pending=payload.outbox_pending,
            software_version=payload.software_version,
            emergency=payload.emergency,
            state=GateLinkState.ONLINE,
            **_reported_modes(payload),
        )
        .where(Gate.gate_id == payload.gate_id)
        .execute()
    )
    return Reason.OK if updated else Reason.UNKNOWN_CODE


def record_status(payload: payloads.GateStatus, topic_gate_id: str | None, now: datetime) -> Reason:
    """Update the gate's online/offline state from its (retained) status message; an online status raises or
    clears the gate's emergency alarm (an offline one, the last will, cannot know the input)."""
    if topic_gate_id != payload.gate_id:
        return Reason.MALFORMED
    # The offline status (the last will, set when the gate connected) cannot know the gate's current mode.
    state = GateLinkState(payload.state)
    modes = _reported_modes(payload) if state == GateLinkState.ONLINE else {}
    values = {"state": state, "emergency": payload.emergency, **modes}
    if payload.software_version:
        values["software_version"] = payload.software_version
    if state == GateLinkState.ONLINE:
        values["last_seen_at"] = now
        _note_emergency(payload.gate_id, payload.emergency, now)
    updated = Gate.update(**values).where(Gate.gate_id == payload.gate_id).execute()
    return Reason.OK if updated else Reason.UNKNOWN_CODE
