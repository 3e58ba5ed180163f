"""One event_id sent for two leads (contract section 2): lead_events is keyed by event_id, so
the store decides which lead keeps it. The copy whose canonical JSON sorts first is the row,
whatever the order the leads' snapshots are written in."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, select

from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.records import Loss
from leadflow.schemas.vocabulary import CONFLICTING_DUPLICATE
from leadflow.sinks.history import contacts_of
from leadflow.sinks.keys import among, key_chunks
from leadflow.sinks.models import EVENTS

CENT = Decimal("0.01")
_KEYS = ("event_id", "event_type", "lead_id", "occurred_at")
_PERSONAL = ("email", "company", "country")
_FIELDS = tuple(c.name for c in EVENTS.columns if c.name not in {*_KEYS, "received_at"})
# A new row's key for where its message came in: (topic, partition, offset); not a column.
ORIGIN = "_origin"
# A new row's key for its copy's canonical JSON, when the row cannot tell it (a lead.created
# whose personal data is not its lead's lead_contacts row); not a column.
CANONICAL = "_canonical"


def row_canonical(row: dict[str, Any], contact: dict[str, Any] | None) -> bytes:
    """The canonical JSON of the event a lead_events row keeps (``contact``: its lead's
    lead_contacts row, whose personal data belongs to the lead's lead.created); equal to
    ``leadflow.agents.facts.canonical`` of the copy the producer sent."""
    document: dict[str, Any] = {key: row[key] for key in _KEYS}
    moment: datetime = row["occurred_at"]
    document["occurred_at"] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    document.update((name, row[name]) for name in _FIELDS if row[name] is not None)
    if row.get("amount") is not None:
        document["amount"] = str(Decimal(row["amount"]).quantize(CENT))
    if contact is not None and row["event_type"] == "lead.created":
        document.update((k, contact[k]) for k in _PERSONAL if contact.get(k) is not None)
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)


@dataclass(slots=True)
class Settled:
    """A batch's new lead_events rows once shared event_ids are settled: rows to insert as the
    batch meant them, rows that replace another lead's stored row, the losing copies'
    dead letters, and the (lead_id, event_id) of each lead whose copy lost."""

    keep: list[dict[str, Any]] = field(default_factory=list)
    moved: list[dict[str, Any]] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    lost: list[Loss] = field(default_factory=list)


def settle_other_leads(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    contacts: dict[str, dict[str, Any]],
    now: datetime,
) -> Settled:
    """An event_id held, in the store or in the batch, by more than one lead goes to the copy
    whose canonical JSON sorts first; every other lead's copy is a conflicting_duplicate
    dead letter, at its own message's place (a stored copy: at the place of the copy that
    displaces it). ``contacts``: the batch's leads' personal data."""
    stored = _stored(conn, {row["event_id"] for row in rows})
    shared = {e for e, leads in _leads_of(rows, stored).items() if len(leads) > 1}
    if not shared:
        return Settled(keep=list(rows))
    known = contacts_of(conn, sorted({stored[e]["lead_id"] for e in shared if e in stored}))
    known.update(contacts)
    copies: dict[str, dict[bytes, dict[str, Any]]] = {}
    for row in [*(stored[e] for e in shared if e in stored), *rows]:
        if row["event_id"] in shared:
            key = row.get(CANONICAL) or row_canonical(row, known.get(row["lead_id"]))
            copies.setdefault(row["event_id"], {}).setdefault(key, row)
    settled = Settled(keep=[row for row in rows if row["event_id"] not in shared])
    for event_id, by_key in copies.items():
        _settle_one(settled, by_key, stored.get(event_id), now)
    return settled


def _settle_one(
    settled: Settled,
    by_key: dict[bytes, dict[str, Any]],
    held: dict[str, Any] | None,
    now: datetime,
) -> None:
    """One shared event_id: its winning row kept or moved in, every other lead's copy a
    dead letter."""
    best = min(by_key)
    winner = by_key[best]
    if held is None or (winner is not held and winner["lead_id"] != held["lead_id"]):
        settled.moved.append(winner)
    elif winner is not held:
        settled.keep.append(winner)  # the holder's own new copy: its own restating decides
    for key, row in by_key.items():
        if row["lead_id"] == winner["lead_id"]:
            continue  # copies of one lead: its fold dead-letters them
        loss = (row["lead_id"], row["event_id"], hashlib.sha256(key).hexdigest())
        if loss not in settled.lost:
            settled.lost.append(loss)
        place = row.get(ORIGIN) or winner.get(ORIGIN)
        if place is not None:
            settled.letters.append(_letter(key, row, place, now))


def _letter(
    key: bytes, row: dict[str, Any], place: tuple[str, int, int], now: datetime
) -> DeadLetter:
    topic, partition, offset = place
    error = (
        f"event_id {row['event_id']!r} was also sent for another lead; the copy whose "
        "canonical JSON sorts first is kept"
    )
    return DeadLetter(topic, partition, offset, CONFLICTING_DUPLICATE, error, key.decode(), now)


def _leads_of(
    rows: Iterable[dict[str, Any]], stored: dict[str, dict[str, Any]]
) -> dict[str, set[str]]:
    leads: dict[str, set[str]] = {}
    for row in [*stored.values(), *rows]:
        leads.setdefault(row["event_id"], set()).add(row["lead_id"])
    return leads


def _stored(conn: Connection, event_ids: set[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in key_chunks(conn, sorted(event_ids)):
        query = select(EVENTS).where(among(conn, EVENTS.c.event_id, chunk))
        for row in conn.execute(query).mappings():
            found[row["event_id"]] = dict(row)
    return found
