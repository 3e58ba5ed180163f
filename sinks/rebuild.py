"""The store side of ``leadflow rebuild`` (contract section 7): lead_events read lead by lead,
the derived rows of each chunk of leads replaced where they differ, all in one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, text, union

from leadflow.schemas.errors import LeadflowError
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks.history import Lost, losses_of
from leadflow.sinks.models import (
    ATTRIBUTION,
    BEATEN,
    EVENTS,
    LIFECYCLE,
    RETRACTIONS,
    SLA,
    TRANSITIONS,
)
from leadflow.sinks.store import AGGREGATE_LOCK_ID, read_old_lifecycles, replace_leads

LEADS_PER_CHUNK = 500


class RebuildRefused(LeadflowError):
    """The store is not in a state rebuild may run on; the message says what to do."""


LISTED = 20  # moved leads kept by name per kind; the rest are counted only (bounded memory)

Change = tuple[str, str | None, str | None]  # (lead_id, before, after)


@dataclass(slots=True)
class Moved:
    """What a rebuild changed: the leads rewritten, how many moved stage or SLA status, and
    the first ``LISTED`` of each by name."""

    leads: int = 0
    rewritten: int = 0
    stage_moved: int = 0
    sla_moved: int = 0
    stage: list[Change] = field(default_factory=list)
    sla: list[Change] = field(default_factory=list)

    def add_stage(self, change: Change) -> None:
        self.stage_moved += 1
        if len(self.stage) < LISTED:
            self.stage.append(change)

    def add_sla(self, change: Change) -> None:
        self.sla_moved += 1
        if len(self.sla) < LISTED:
            self.sla.append(change)


def take_store(conn: Connection, now: datetime, quiet: timedelta) -> None:
    """Inside the rebuild's transaction: refuse while a worker writes; then hold writers off.

    PostgreSQL: the writers' transaction lock, taken without waiting and held to the commit.
    SQLite: the transaction began IMMEDIATE, so it holds the write lock. Both: a write newer
    than ``quiet`` means a worker is running.
    """
    if conn.dialect.name == "postgresql":
        got = conn.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": AGGREGATE_LOCK_ID})
        if not got.scalar():
            raise RebuildRefused(
                "a worker is writing to this store: stop the workers, then rebuild"
            )
    last = max(
        (
            t
            for t in (_latest(conn, EVENTS.c.received_at), _latest(conn, LIFECYCLE.c.updated_at))
            if t is not None
        ),
        default=None,
    )
    if last is not None and now - last < quiet:
        ago = int((now - last).total_seconds())
        raise RebuildRefused(
            f"this store was written {ago} s ago: a worker may be running. Stop the workers "
            f"(rebuild waits for {int(quiet.total_seconds())} s without writes), then rebuild"
        )
    has_events = select(EVENTS.c.event_id).where(EVENTS.c.lead_id == LIFECYCLE.c.lead_id)
    has_losses = select(RETRACTIONS.c.event_id).where(RETRACTIONS.c.lead_id == LIFECYCLE.c.lead_id)
    orphans = conn.execute(
        select(func.count())
        .select_from(LIFECYCLE)
        .where(~has_events.exists(), ~has_losses.exists())
    ).scalar_one()
    if orphans:
        raise RebuildRefused(
            f"{orphans} leads of lead_lifecycle have no events in lead_events (stored before "
            "it existed): a rebuild would lose them"
        )


def _latest(conn: Connection, column: Any) -> datetime | None:
    value: datetime | None = conn.execute(select(func.max(column))).scalar()
    return value


# lead -> (events, losses to other leads, copies beaten by another copy of the lead)
History = dict[str, tuple[list[dict[str, Any]], Lost, Lost]]


def lead_chunks(conn: Connection) -> Iterator[History]:
    """lead_events and lead_retractions by lead, LEADS_PER_CHUNK leads at a time, in lead_id
    order: each lead's event rows and the event_ids it lost to another lead."""
    last = ""
    c = EVENTS.c
    while True:
        leads = union(
            select(c.lead_id).where(c.lead_id > last),
            select(RETRACTIONS.c.lead_id).where(RETRACTIONS.c.lead_id > last),
        ).subquery()
        ids = list(
            conn.execute(
                select(leads.c.lead_id).order_by(leads.c.lead_id).limit(LEADS_PER_CHUNK)
            ).scalars()
        )
        if not ids:
            return
        rows: History = {lead_id: ([], {}, {}) for lead_id in ids}
        for row in conn.execute(select(EVENTS).where(c.lead_id.in_(ids))).mappings():
            rows[row["lead_id"]][0].append(dict(row))
        for lead_id, lost in losses_of(conn, ids).items():
            rows[lead_id][1].update(lost)
        for lead_id, beaten in losses_of(conn, ids, BEATEN).items():
            rows[lead_id][2].update(beaten)
        yield rows
        last = ids[-1]


def replace_chunk(
    conn: Connection, snapshots: Sequence[LeadSnapshot], now: datetime, moved: Moved
) -> None:
    """Rewrite the leads of ``snapshots`` whose stored rows differ from theirs."""
    ids = sorted(snap.lead_id for snap in snapshots)
    old = read_old_lifecycles(conn, ids)
    stored = _stored_rows(conn, ids)
    changed = [snap for snap in snapshots if stored.get(snap.lead_id) != _rows_of(snap)]
    moved.leads += len(snapshots)
    moved.rewritten += len(changed)
    for snap in changed:
        before = old.get(snap.lead_id, {})
        life = snap.lifecycle
        if before.get("stage") != life["stage"]:
            moved.add_stage((snap.lead_id, before.get("stage"), life["stage"]))
        if before.get("sla_status") != life["sla_status"]:
            moved.add_sla((snap.lead_id, before.get("sla_status"), life["sla_status"]))
    replace_leads(conn, changed, old, now, force=True)


Rows = tuple[Any, ...]


def _rows_of(snap: LeadSnapshot) -> Rows | None:
    """None for a lead left with no event: it has no rows."""
    if not snap.lifecycle["event_count"]:
        return None
    return (
        dict(snap.lifecycle),
        frozenset(frozenset(t.items()) for t in snap.transitions),
        frozenset(frozenset(r.items()) for r in snap.sla),
        frozenset(frozenset(r.items()) for r in snap.attribution),
    )


def _stored_rows(conn: Connection, ids: list[str]) -> dict[str, Rows]:
    """Each stored lead's rows, in the form of :func:`_rows_of`."""
    lives = {
        row["lead_id"]: {k: v for k, v in row.items() if k != "updated_at"}
        for row in conn.execute(select(LIFECYCLE).where(LIFECYCLE.c.lead_id.in_(ids))).mappings()
    }
    groups: dict[str, list[list[frozenset[Any]]]] = {lead_id: [[], [], []] for lead_id in lives}
    for slot, table in enumerate((TRANSITIONS, SLA, ATTRIBUTION)):
        for row in conn.execute(select(table).where(table.c.lead_id.in_(ids))).mappings():
            if row["lead_id"] in groups:
                groups[row["lead_id"]][slot].append(frozenset(dict(row).items()))
    return {
        lead_id: (lives[lead_id], *(frozenset(rows) for rows in groups[lead_id]))
        for lead_id in lives
    }
