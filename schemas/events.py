"""One pydantic v2 model per event type of docs/contract.md, section 2, and their tagged union."""

from __future__ import annotations

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


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it at the door rather than fail the store later.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _empty_to_none(value: Any) -> Any:
    return None if value == "" else value


Id = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=128), AfterValidator(_no_nul)
]
Name = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=256), AfterValidator(_no_nul)
]
OptName = Annotated[Name | None, BeforeValidator(_empty_to_none)]
Score = Annotated[int, Strict(), Field(ge=-(2**31), le=2**31 - 1)]  # the store's INTEGER
# 15 digits: exact in every store (SQLite keeps NUMERIC as a double, exact to 15 digits).
Amount = Annotated[Decimal, Field(ge=0, max_digits=15, decimal_places=2, allow_inf_nan=False)]
Currency = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Z]{3}$")]
Timestamp = Annotated[AwareDatetime, Strict()]


class BaseEvent(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: Id
    lead_id: Id
    occurred_at: Timestamp
    source_system: OptName = None
    schema_version: Literal[1] | None = 1


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
