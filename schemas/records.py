"""Records that cross layers: a lead's snapshot of rows, and the topic names of one pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

from leadflow.schemas.vocabulary import topic_kind_of

STATE_TABLE = "leads"  # the Faust table of per-lead state, named in its changelog topic


@dataclass(frozen=True, slots=True)
class LeadSnapshot:
    """One lead's rows: the ``lead_lifecycle`` row (no ``updated_at``), transitions and SLA rows."""

    lead_id: str
    version: int
    lifecycle: dict[str, Any]
    transitions: list[dict[str, Any]]
    sla: list[dict[str, Any]]
    contact: dict[str, Any] | None = None  # personal data: lead_contacts only
    attribution: list[dict[str, Any]] = field(default_factory=list)  # won leads only
    # The lead_events rows (no received_at) of the events this snapshot is the first to hold.
    events: list[dict[str, Any]] = field(default_factory=list)
    # The event_ids of ``events`` whose row replaces a stored copy that lost (section 2).
    restated: list[str] = field(default_factory=list)
    # (event_id, copy digest) of each copy the lead sent that lost to another of its copies.
    beaten: list[tuple[str, str]] = field(default_factory=list)

    def __reduce__(self) -> tuple[Any, ...]:
        # A snapshot pickles as its field values: the slotted default would call
        # dataclasses.fields() for every object sent to the store writer.
        return (LeadSnapshot, _snapshot_fields(self))


_snapshot_fields = attrgetter(*(f.name for f in fields(LeadSnapshot)))


# (lead_id, event_id, copy): the lead sent the event_id and another lead's copy keeps it;
# ``copy`` is sha256 of the canonical JSON of the lead's copy that lost, in hex.
Loss = tuple[str, str, str]


class Written(int):
    """The store's answer for a batch: the rows it inserted or updated (the int itself), and
    the losses it recorded in lead_retractions with that batch."""

    losses: tuple[Loss, ...]

    def __new__(cls, rows: int, losses: tuple[Loss, ...] = ()) -> Written:
        written = super().__new__(cls, rows)
        written.losses = losses
        return written

    def __reduce__(self) -> tuple[Any, ...]:
        return (Written, (int(self), self.losses))


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Every topic one pipeline (one ``LEADFLOW_APP_ID``) reads or writes."""

    marketing: str
    sales: str
    lifecycle: str
    dead_letters: str
    rekeyed: str  # internal: events whose key or partition did not match the lead's partition
    changelog: str  # internal: the Faust table of per-lead state

    @classmethod
    def for_app(
        cls, app_id: str, marketing: str, sales: str, lifecycle: str, dead_letters: str
    ) -> TopicNames:
        """The names of one app: the four public topics and the app's two internal ones."""
        return cls(
            marketing=marketing,
            sales=sales,
            lifecycle=lifecycle,
            dead_letters=dead_letters,
            rekeyed=f"{app_id}-events-by-lead",
            changelog=f"{app_id}-{STATE_TABLE}-changelog",
        )

    @property
    def inputs(self) -> tuple[str, str]:
        return (self.marketing, self.sales)

    def topic_of(self, event_type: str) -> str:
        """The input topic an (accepted) event of this type came from."""
        return self.marketing if topic_kind_of(event_type) == "marketing" else self.sales

    def kind_of(self, topic: str) -> str:
        """``marketing`` or ``sales`` for an input topic name."""
        return "marketing" if topic == self.marketing else "sales"
