"""The SQL sink: one transaction per batch of lead snapshots and dead letters, idempotent."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.records import LeadSnapshot, Loss, Written
from leadflow.sinks.aggregates import (
    FunnelKey,
    RevenueKey,
    apply_funnel_delta,
    apply_revenue_delta,
    funnel_keys,
    revenue_key,
    upsert,
)
from leadflow.sinks.conflicts import settle_other_leads
from leadflow.sinks.engine import WRITE_OPTION
from leadflow.sinks.errors import translate
from leadflow.sinks.keys import among, key_chunks
from leadflow.sinks.models import (
    ATTRIBUTION,
    BEATEN,
    CONTACTS,
    DEAD_LETTERS,
    EVENTS,
    LIFECYCLE,
    RETRACTIONS,
    SLA,
    TRANSITIONS,
)
from leadflow.sinks.reads import rows_where
from leadflow.sinks.rows import delete_rows, insert_rows

# Any constant shared by every leadflow writer of one database; "leadflow" in ASCII.
AGGREGATE_LOCK_ID = 0x6C656164666C6F77


class Sink(Protocol):
    """Where the pipeline writes lead snapshots and dead letters."""

    def write_batch(
        self, snapshots: Sequence[LeadSnapshot], dead_letters: Sequence[DeadLetter], now: datetime
    ) -> int:
        """Write one batch atomically; return the number of rows inserted or updated (a
        :class:`Written`, naming the losses recorded, from a sink that records them)."""
        ...

    def close(self) -> None:
        """Release the sink's connections."""
        ...


class SqlSink:
    """A :class:`Sink` over a SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write_batch(
        self, snapshots: Sequence[LeadSnapshot], dead_letters: Sequence[DeadLetter], now: datetime
    ) -> int:
        """Write one batch in one transaction.

        Returns the rows inserted or updated in lead_lifecycle, lead_stage_transitions,
        handoff_sla and dead_letters (so replaying a batch returns 0), as a :class:`Written`
        naming each lead whose copy of an event_id lost to another lead's in this batch (also
        recorded in lead_retractions). The snapshots' new events go to lead_events in the same
        transaction; an event stored already is kept.
        """
        if not snapshots and not dead_letters:
            return 0
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    conflicts, losses = _write_events(conn, snapshots, now)
                    written = _write_snapshots(conn, snapshots, now) if snapshots else 0
                    written += _write_dead_letters(conn, [*dead_letters, *conflicts])
                    return Written(written, tuple(losses))
        except SQLAlchemyError as error:
            raise translate(error, "writing a batch to the store") from error

    def close(self) -> None:
        self.engine.dispose()


def _latest(snapshots: Iterable[LeadSnapshot]) -> dict[str, LeadSnapshot]:
    latest: dict[str, LeadSnapshot] = {}
    for snap in snapshots:
        kept = latest.get(snap.lead_id)
        if kept is None or snap.version > kept.version:
            latest[snap.lead_id] = snap
        elif snap.version == kept.version:  # the later one, restating what either restates
            restated = sorted({*kept.restated, *snap.restated})
            latest[snap.lead_id] = replace(snap, restated=restated)
    return latest


def _write_snapshots(conn: Connection, snapshots: Sequence[LeadSnapshot], now: datetime) -> int:
    _lock_writers(conn)  # aggregate recomputes must see every other writer's committed rows
    latest = _latest(snapshots)
    _record_beaten(conn, latest.values(), now)
    old = read_old_lifecycles(conn, sorted(latest))
    floors = tombstones(conn, sorted(lead for lead in latest if lead not in old))
    fresh = [
        snap
        for snap in latest.values()
        if _replaces(snap, old.get(snap.lead_id)) and snap.version >= floors.get(snap.lead_id, 0)
    ]
    return replace_leads(conn, fresh, old, now)


def _record_beaten(conn: Connection, snapshots: Iterable[LeadSnapshot], now: datetime) -> None:
    """Record each copy a lead's snapshot says lost to another of its copies (each counts in
    the lead's version: rebuild and recovery read them)."""
    rows = [
        {"lead_id": snap.lead_id, "event_id": e, "copy_sha256": d, "recorded_at": now}
        for snap in snapshots
        for e, d in snap.beaten
    ]
    insert_rows(conn, BEATEN, rows, ignore_key=("lead_id", "event_id", "copy_sha256"))


def tombstones(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
    """Of leads with no lifecycle row, the lowest version a snapshot needs to be written: 4 per
    recorded losing copy (:func:`leadflow.agents.fold.lead_version`). A lead whose every event
    was lost has no rows at that version; a snapshot folded before its last loss is lower (each
    copy it holds counts 2 and lost later, each loss it knows is one of the recorded ones), so
    it cannot bring the rows back."""
    floors: dict[str, int] = {}
    c = RETRACTIONS.c
    for chunk in key_chunks(conn, ids):
        query = select(c.lead_id, func.count()).where(among(conn, c.lead_id, chunk))
        query = query.group_by(c.lead_id)
        for lead_id, count in conn.execute(query):
            floors[lead_id] = 4 * count
    return floors


def replace_leads(
    conn: Connection,
    fresh: Sequence[LeadSnapshot],
    old: dict[str, dict[str, Any]],
    now: datetime,
    *,
    force: bool = False,
) -> int:
    """Make the rows of each lead of ``fresh`` (one snapshot per lead) its snapshot's, and move
    the aggregates by the difference; ``old``: their stored lifecycle rows
    (:func:`read_old_lifecycles`). ``force``: whatever the stored version."""
    if not fresh:
        return 0
    ids = sorted(s.lead_id for s in fresh)
    funnel, revenue, stored = _old_contributions(conn, ids, old)
    for snap in fresh:
        life = snap.lifecycle
        funnel.update(
            funnel_keys(
                ((t["entered_at"], t["stage"]) for t in snap.transitions),
                life["source"],
                life["campaign_id"],
            )
        )
        _add_revenue(revenue, life, +1)
    written = _replace_lead_rows(conn, fresh, old, stored, now, force)
    apply_funnel_delta(conn, funnel)
    apply_revenue_delta(conn, revenue)
    return written


def _replaces(snap: LeadSnapshot, stored: dict[str, Any] | None) -> bool:
    """Whether ``snap`` replaces the stored lead: a higher version, or the same version with a
    restated event (a winning copy keeps the event count, hence the version)."""
    if stored is None:
        return True
    return stored["version"] < snap.version or (
        bool(snap.restated) and stored["version"] == snap.version
    )


_OLD_COLUMNS = (
    "lead_id",
    "version",
    "stage",
    "sla_status",
    "source",
    "campaign_id",
    "won_at",
    "currency",
    "amount",
)


def read_old_lifecycles(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored lifecycle columns a replacement compares and moves the aggregates by."""
    return {
        row[0]: dict(zip(_OLD_COLUMNS, row, strict=True))
        for row in rows_where(conn, LIFECYCLE, _OLD_COLUMNS, "lead_id", ids)
    }


Transition = tuple[int, str, datetime, bool]  # cycle_no, stage, entered_at, inferred


def _old_contributions(
    conn: Connection, ids: Sequence[str], old: dict[str, dict[str, Any]]
) -> tuple[Counter[FunnelKey], dict[RevenueKey, tuple[int, Decimal]], dict[str, set[Transition]]]:
    """Minus what the stored rows of the leads about to be replaced count in the aggregates,
    and those leads' stored transitions."""
    existing = [lead_id for lead_id in ids if lead_id in old]
    funnel: Counter[FunnelKey] = Counter()
    revenue: dict[RevenueKey, tuple[int, Decimal]] = {}
    stored: dict[str, set[Transition]] = {lead_id: set() for lead_id in existing}
    columns = ("lead_id", "cycle_no", "stage", "entered_at", "inferred")
    found = rows_where(conn, TRANSITIONS, columns, "lead_id", existing)
    for lead_id, cycle_no, stage, entered_at, inferred in found:
        stored[lead_id].add((cycle_no, stage, entered_at, bool(inferred)))
    for lead_id in existing:
        row = old[lead_id]
        entries = ((entered_at, stage) for _, stage, entered_at, _ in stored[lead_id])
        funnel.subtract(funnel_keys(entries, row["source"], row["campaign_id"]))
        _add_revenue(revenue, row, -1)
    return funnel, revenue, stored


def _add_revenue(
    revenue: dict[RevenueKey, tuple[int, Decimal]], row: dict[str, Any], sign: int
) -> None:
    key = revenue_key(row)
    if key is not None:
        deals, amount = revenue.get(key, (0, Decimal(0)))
        revenue[key] = (deals + sign, amount + sign * Decimal(row["amount"] or 0))


_SLA_COLUMNS = (
    "mql_at",
    "deadline",
    "responded_at",
    "response_type",
    "response_seconds",
    "status",
    "owner_id",
    "policy",
    "response_business_seconds",
)


def _replace_lead_rows(
    conn: Connection,
    fresh: Sequence[LeadSnapshot],
    old: dict[str, dict[str, Any]],
    stored: dict[str, set[Transition]],
    now: datetime,
    force: bool,
) -> int:
    """Make each lead's rows exactly its snapshot's, touching only the rows that changed."""
    emptied = [snap.lead_id for snap in fresh if not snap.lifecycle["event_count"]]
    _delete_leads(conn, emptied)
    rows = [{**snap.lifecycle, "updated_at": now} for snap in fresh if snap.lead_id not in emptied]
    if force:
        _write_lifecycles(conn, rows, old, None)
    else:
        restating = {snap.lead_id for snap in fresh if snap.restated}
        _write_lifecycles(conn, [r for r in rows if r["lead_id"] not in restating], old, "<")
        _write_lifecycles(conn, [r for r in rows if r["lead_id"] in restating], old, "<=")
    gone: list[tuple[Any, ...]] = []
    added: list[dict[str, Any]] = []
    for snap in fresh:
        before = stored.get(snap.lead_id, set())
        after = {
            (t["cycle_no"], t["stage"], t["entered_at"], t["inferred"]): t for t in snap.transitions
        }
        gone += [(snap.lead_id, c, stage) for c, stage, _, _ in before - after.keys()]
        added += [row for key, row in after.items() if key not in before]
    delete_rows(conn, TRANSITIONS, ("lead_id", "cycle_no", "stage"), gone)
    insert_rows(conn, TRANSITIONS, added)
    sla_written = _replace_sla(conn, fresh)
    won_before = [lead for lead, row in old.items() if row["stage"] == "won"]
    credits = [row for snap in fresh for row in snap.attribution]
    attributed = sorted({*won_before, *(row["lead_id"] for row in credits)})
    for chunk in key_chunks(conn, attributed):
        conn.execute(delete(ATTRIBUTION).where(among(conn, ATTRIBUTION.c.lead_id, chunk)))
    insert_rows(conn, ATTRIBUTION, credits)
    contacts = [{**snap.contact, "updated_at": now} for snap in fresh if snap.contact]
    insert_rows(conn, CONTACTS, contacts, upsert_key=("lead_id",))
    return len(rows) + len(gone) + len(added) + sla_written + len(contacts)


def _delete_leads(conn: Connection, ids: Sequence[str]) -> None:
    """Leads left with no event (every one lost to another lead) have no lifecycle row, and
    no personal data: the writer may not delete lead_contacts rows, so it empties them."""
    for chunk in key_chunks(conn, ids):
        conn.execute(delete(LIFECYCLE).where(among(conn, LIFECYCLE.c.lead_id, chunk)))
        conn.execute(
            update(CONTACTS)
            .where(among(conn, CONTACTS.c.lead_id, chunk))
            .values(email=None, company=None, country=None)
        )


# The columns of lead_lifecycle's secondary index (the primary key is never updated).
_INDEXED = ("stage", "won_at")


def _write_lifecycles(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    old: dict[str, dict[str, Any]],
    newer: str | None,
) -> None:
    """Upsert the lifecycle rows; where the indexed columns keep their stored values, leave
    them out of the update so that a batch touching leads all over a big table dirties one
    page per lead, not two. ``newer``: the stored version must be ``<`` or ``<=`` the row's
    (None: any version)."""
    same: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for row in rows:
        stored = old.get(row["lead_id"])
        kept = stored is not None and all(stored[c] == row[c] for c in _INDEXED)
        (same if kept else moved).append(row)
    for part, unchanged in ((same, _INDEXED), (moved, ())):
        insert_rows(
            conn,
            LIFECYCLE,
            part,
            upsert_key=("lead_id",),
            only_if_newer=None if newer is None else "version",
            unchanged=unchanged,
            or_equal=newer == "<=",
        )


def _replace_sla(conn: Connection, fresh: Sequence[LeadSnapshot]) -> int:
    columns = ("lead_id", "cycle_no", *_SLA_COLUMNS)
    ids = [snap.lead_id for snap in fresh]
    stored = {(r[0], r[1]): r[2:] for r in rows_where(conn, SLA, columns, "lead_id", ids)}
    changed = []
    keep = set()
    for snap in fresh:
        for row in snap.sla:
            key = (snap.lead_id, row["cycle_no"])
            keep.add(key)
            if stored.get(key) != tuple(row[name] for name in _SLA_COLUMNS):
                changed.append(row)
    gone = [key for key in stored if key not in keep]
    delete_rows(conn, SLA, ("lead_id", "cycle_no"), gone)
    insert_rows(conn, SLA, changed, upsert_key=("lead_id", "cycle_no"))
    return len(changed) + len(gone)


def _write_events(
    conn: Connection, snapshots: Sequence[LeadSnapshot], now: datetime
) -> tuple[list[DeadLetter], list[Loss]]:
    """Insert every snapshot's new events (of any version: a stale snapshot's events are still
    accepted events); an ``event_id`` stored already keeps its row unless the snapshot
    restates it (the winning copy of a conflicting duplicate replaces the losing one). An
    ``event_id`` of several leads goes to the copy whose canonical JSON sorts first; returns
    the dead letters of the other leads' copies and those leads' losses, recorded in
    lead_retractions."""
    added: list[dict[str, Any]] = []
    restated: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        names = set(snap.restated)
        for row in snap.events:
            if row["event_id"] in names:
                restated[row["event_id"]] = {**row, "received_at": now}
            else:
                added.append({**row, "received_at": now})
    if not added and not restated:
        return [], []
    _lock_writers(conn)  # which lead holds a shared event_id is read and written under it
    contacts = {snap.lead_id: snap.contact for snap in snapshots if snap.contact}
    upserts = {id(row) for row in restated.values()}
    settled = settle_other_leads(conn, [*added, *restated.values()], contacts, now)
    keep = settled.keep
    insert_rows(conn, EVENTS, [r for r in keep if id(r) not in upserts], ignore_key=("event_id",))
    insert_rows(conn, EVENTS, [r for r in keep if id(r) in upserts], upsert_key=("event_id",))
    insert_rows(conn, EVENTS, settled.moved, upsert_key=("event_id",))
    retractions = [
        {"lead_id": lead_id, "event_id": event_id, "copy_sha256": copy, "recorded_at": now}
        for lead_id, event_id, copy in settled.lost
    ]
    insert_rows(conn, RETRACTIONS, retractions, ignore_key=("lead_id", "event_id", "copy_sha256"))
    return settled.letters, settled.lost


def _lock_writers(conn: Connection) -> None:
    """PostgreSQL: one writer at a time (held to the commit; taken again, it is a no-op)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": AGGREGATE_LOCK_ID})


def payload_hash(payload: str) -> str:
    """The dead-letter key's last part: sha256 of the stored payload, in hex."""
    return hashlib.sha256(payload.encode()).hexdigest()


_DEAD_LETTER_KEY = ("topic", "partition", "offset", "payload_hash")


def _write_dead_letters(conn: Connection, dead_letters: Sequence[DeadLetter]) -> int:
    if not dead_letters:
        return 0
    stmt = upsert(conn, DEAD_LETTERS).on_conflict_do_nothing(
        index_elements=[DEAD_LETTERS.c[name] for name in _DEAD_LETTER_KEY]
    )
    rows = [{**asdict(d), "payload_hash": payload_hash(d.payload)} for d in dead_letters]
    result = conn.execute(stmt.returning(DEAD_LETTERS.c.topic), rows)
    return len(result.all())
