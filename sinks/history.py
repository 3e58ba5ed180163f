"""Reading the event history back: stored lead versions and lead_events rows (section 7)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Table, select

from leadflow.sinks.models import CONTACTS, EVENTS, LIFECYCLE, RETRACTIONS

CHUNK = 500


def stored_versions(conn: Connection, keep: Callable[[str], bool]) -> dict[str, int]:
    """The stored ``version`` of every lead that ``keep`` accepts (one pass over the table)."""
    c = LIFECYCLE.c
    found: dict[str, int] = {}
    result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
        select(c.lead_id, c.version)
    )
    for lead_id, version in result:
        if keep(lead_id):
            found[lead_id] = version
    return found


Lost = dict[str, set[str]]  # event_id -> copy_sha256 of each of the lead's copies that lost


def recorded_losses(conn: Connection, keep: Callable[[str], bool]) -> dict[str, Lost]:
    """The lead_retractions rows of every lead that ``keep`` accepts (one pass)."""
    c = RETRACTIONS.c
    found: dict[str, Lost] = {}
    result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
        select(c.lead_id, c.event_id, c.copy_sha256)
    )
    for lead_id, event_id, copy in result:
        if keep(lead_id):
            found.setdefault(lead_id, {}).setdefault(event_id, set()).add(copy)
    return found


def losses_of(
    conn: Connection, lead_ids: Sequence[str], table: Table = RETRACTIONS
) -> dict[str, Lost]:
    """The lead_retractions rows (or ``table``'s, lead_beaten_copies) of each of these leads
    (those with none left out)."""
    c = table.c
    found: dict[str, Lost] = {}
    for chunk in _chunks(lead_ids):
        query = select(c.lead_id, c.event_id, c.copy_sha256).where(c.lead_id.in_(chunk))
        for lead_id, event_id, copy in conn.execute(query):
            found.setdefault(lead_id, {}).setdefault(event_id, set()).add(copy)
    return found


def unrecorded(conn: Connection, keep: Callable[[str], bool]) -> list[str]:
    """The leads of lead_lifecycle that ``keep`` accepts and that have neither a lead_events
    nor a lead_retractions row (a store written before lead_events existed), in lead_id
    order."""
    c = LIFECYCLE.c
    has_events = select(EVENTS.c.event_id).where(EVENTS.c.lead_id == c.lead_id).exists()
    has_losses = select(RETRACTIONS.c.event_id).where(RETRACTIONS.c.lead_id == c.lead_id).exists()
    query = select(c.lead_id).where(~has_events, ~has_losses).order_by(c.lead_id)
    result = conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
    return [lead_id for (lead_id,) in result if keep(lead_id)]


def events_of(conn: Connection, lead_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The lead_events rows of each lead (those with none are left out)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for chunk in _chunks(lead_ids):
        for row in conn.execute(select(EVENTS).where(EVENTS.c.lead_id.in_(chunk))).mappings():
            rows.setdefault(row["lead_id"], []).append(dict(row))
    return rows


def contacts_of(conn: Connection, lead_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The lead_contacts row of each lead that has one."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(lead_ids):
        query = select(CONTACTS).where(CONTACTS.c.lead_id.in_(chunk))
        for row in conn.execute(query).mappings():
            found[row["lead_id"]] = dict(row)
    return found


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
