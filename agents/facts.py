"""The compact, sortable form of an accepted event that the fold and the state table keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

import orjson

from leadflow.schemas.events import BaseEvent
from leadflow.schemas.vocabulary import EVENT_TYPES, TYPE_RANK

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CENT = Decimal("0.01")


class Fact(NamedTuple):
    """An accepted event reduced to what the fold reads; tuples sort in the contract's order."""

    ts: int  # occurred_at in microseconds since the epoch, UTC
    rank: int
    event_id: str
    source: str | None = None
    campaign_id: str | None = None
    score: int | None = None
    owner_id: str | None = None
    reason: str | None = None
    opportunity_id: str | None = None
    amount: str | None = None
    currency: str | None = None
    # Personal data of lead.created: only ever written to lead_contacts.
    email: str | None = None
    company: str | None = None
    country: str | None = None
    # Kept for lead_events (and a duplicate's content); the fold reads neither.
    channel: str | None = None
    source_system: str | None = None

    @property
    def event_type(self) -> str:
        return EVENT_TYPES[self.rank]

    @classmethod
    def from_event(cls, event: BaseEvent) -> Fact:
        data = event.__dict__
        amount = data.get("amount")
        return cls(
            ts=to_micros(event.occurred_at),
            rank=TYPE_RANK[data["event_type"]],
            event_id=event.event_id,
            source=data.get("source"),
            campaign_id=data.get("campaign_id"),
            score=data.get("score"),
            owner_id=data.get("owner_id"),
            reason=data.get("reason"),
            opportunity_id=data.get("opportunity_id"),
            amount=None if amount is None else str(amount),
            currency=data.get("currency"),
            email=data.get("email"),
            company=data.get("company"),
            country=data.get("country"),
            channel=data.get("channel"),
            source_system=data.get("source_system"),
        )


def event_document(lead_id: str, fact: Fact) -> dict[str, object]:
    """The event as a JSON object: the fields the fold keeps, absent and null ones left out."""
    document: dict[str, object] = {
        "event_id": fact.event_id,
        "event_type": EVENT_TYPES[fact.rank],
        "lead_id": lead_id,
        "occurred_at": from_micros(fact.ts),
    }
    document.update(
        (name, value)
        for name, value in zip(Fact._fields[3:], fact[3:], strict=True)
        if value is not None
    )
    return document


def canonical(lead_id: str, fact: Fact) -> bytes:
    """The event's canonical JSON (keys sorted, no spaces, absent and null fields left out,
    ``occurred_at`` in UTC, ``amount`` with two decimals): two copies of one ``event_id`` are
    the same event when theirs are equal; else the smaller one wins."""
    document = event_document(lead_id, fact)
    if fact.amount is not None:  # one decimal, one text: "10.5" and "10.50" are one amount
        document["amount"] = str(Decimal(fact.amount).quantize(CENT))
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exact."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The UTC datetime of a microsecond timestamp, exact."""
    return EPOCH + timedelta(microseconds=micros)


def to_decimal(amount: str | None) -> Decimal | None:
    return None if amount is None else Decimal(amount)
