"""One pydantic v2 model per event type of docs/contract.md, section 2, and their tagged union."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
)

# The shapes a string must have, whole; schemas/export.py exports the same rules.
TIMESTAMP_SHAPE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
AMOUNT_SHAPE = re.compile(r"[0-9]{1,13}(?:\.[0-9]{1,2})?")
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999999.99")  # 15 digits: exact in every store (and as a double)
SCORE_MIN, SCORE_MAX = -(2**31), 2**31 - 1  # the store's INTEGER


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it at the door rather than fail the store later.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _empty_to_none(value: Any) -> Any:
    return None if value == "" else value


def _rfc3339(value: Any) -> Any:
    # Only strings of this shape reach the datetime parser (no numbers, no other layouts).
    if not isinstance(value, str) or not TIMESTAMP_SHAPE.fullmatch(value):
        raise ValueError("must be an RFC 3339 timestamp with offset, e.g. 2026-03-02T09:30:00Z")
    return value


def _integral(value: Any) -> Any:
    # A JSON number with a zero fraction (10.0, 1e2) is an integer, as JSON Schema says.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _amount_input(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a JSON number or string, not a boolean")
    if isinstance(value, str) and not AMOUNT_SHAPE.fullmatch(value):
        raise ValueError('as a string must be plain digits with at most 2 decimals, e.g. "1250.00"')
    return value


def _amount_range(value: Decimal) -> Decimal:
    if not value.is_finite() or value < 0 or value > MAX_AMOUNT:
        raise ValueError(f"must be between 0 and {MAX_AMOUNT}")
    if value % CENT != 0:
        raise ValueError("must have at most 2 decimal places")
    return value


def _not_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be the integer 1")
    return value


Id = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=128), AfterValidator(_no_nul)
]
Name = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=256), AfterValidator(_no_nul)
]
OptName = Annotated[Name | None, BeforeValidator(_empty_to_none)]
Score = Annotated[int, Strict(), Field(ge=SCORE_MIN, le=SCORE_MAX), BeforeValidator(_integral)]
Amount = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    BeforeValidator(_amount_input),
    AfterValidator(_amount_range),
]
Currency = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Z]{3}$")]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
SchemaVersion = Annotated[Literal[1] | None, BeforeValidator(_not_boolean)]


class BaseEvent(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: Id
    lead_id: Id
    occurred_at: Timestamp
    source_system: OptName = None
    schema_version: SchemaVersion = 1


class LeadCreated(BaseEvent):
    event_type: Literal["lead.created"]
    source: Name
    campaign_id: OptName = None
    email: OptName = None
    company: OptName = None
    country: OptName = None


class LeadTouch(BaseEvent):
    event_type: Literal["lead.touch"]
    campaign_id: Name
    channel: OptName = None


class LeadScored(BaseEvent):
    event_type: Literal["lead.scored"]
    score: Score


class LeadMql(BaseEvent):
    event_type: Literal["lead.mql"]
    score: Score | None = None
    campaign_id: OptName = None


class LeadAssigned(BaseEvent):
    event_type: Literal["lead.assigned"]
    owner_id: Name


class LeadContacted(BaseEvent):
    event_type: Literal["lead.contacted"]
    owner_id: OptName = None
    channel: OptName = None


class LeadAccepted(BaseEvent):
    event_type: Literal["lead.accepted"]
    owner_id: OptName = None


class LeadRejected(BaseEvent):
    event_type: Literal["lead.rejected"]
    reason: Name
    owner_id: OptName = None


class OpportunityCreated(BaseEvent):
    event_type: Literal["opportunity.created"]
    opportunity_id: Name
    amount: Amount
    currency: Currency
    owner_id: OptName = None


class DealWon(BaseEvent):
    event_type: Literal["deal.won"]
    opportunity_id: Name
    amount: Amount
    currency: Currency
    owner_id: OptName = None


class DealLost(BaseEvent):
    event_type: Literal["deal.lost"]
    opportunity_id: Name
    reason: OptName = None
    owner_id: OptName = None


Event = Annotated[
    LeadCreated
    | LeadTouch
    | LeadScored
    | LeadMql
    | LeadAssigned
    | LeadContacted
    | LeadAccepted
    | LeadRejected
    | OpportunityCreated
    | DealWon
    | DealLost,
    Field(discriminator="event_type"),
]

EVENT_MODELS: dict[str, type[BaseEvent]] = {
    "lead.created": LeadCreated,
    "lead.touch": LeadTouch,
    "lead.scored": LeadScored,
    "lead.mql": LeadMql,
    "lead.assigned": LeadAssigned,
    "lead.contacted": LeadContacted,
    "lead.accepted": LeadAccepted,
    "lead.rejected": LeadRejected,
    "opportunity.created": OpportunityCreated,
    "deal.won": DealWon,
    "deal.lost": DealLost,
}

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
