"""SQLAlchemy models of the shared store (docs/contract.md, section 4)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Float, Index, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from leadflow.sinks.types import ExactNumeric, UTCDateTime

Money = ExactNumeric(18, 2)


class Base(DeclarativeBase):
    """The declarative base of every leadflow table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        Decimal: Money,
        str: String(),
        float: Float(),
    }


class LeadLifecycle(Base):
    """One row per lead: its current state and the snapshot version it came from."""

    __tablename__ = "lead_lifecycle"
    __table_args__ = (Index("ix_lead_lifecycle_stage_won_at", "stage", "won_at"),)

    lead_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    stage: Mapped[str | None] = mapped_column(String(16))
    cycle_no: Mapped[int]
    source: Mapped[str | None]
    campaign_id: Mapped[str | None]
    owner_id: Mapped[str | None]
    score: Mapped[int | None]
    lead_at: Mapped[datetime | None]
    mql_at: Mapped[datetime | None]
    sal_at: Mapped[datetime | None]
    sql_at: Mapped[datetime | None]
    won_at: Mapped[datetime | None]
    lost_at: Mapped[datetime | None]
    recycled_at: Mapped[datetime | None]
    disqualified_at: Mapped[datetime | None]
    first_contact_at: Mapped[datetime | None]
    rejection_reason: Mapped[str | None]
    lost_reason: Mapped[str | None]
    opportunity_id: Mapped[str | None]
    amount: Mapped[Decimal | None]
    currency: Mapped[str | None]
    sla_status: Mapped[str | None] = mapped_column(String(16))
    response_seconds: Mapped[float | None]
    event_count: Mapped[int]
    is_orphan: Mapped[bool]
    last_event_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class LeadStageTransition(Base):
    """One row per lead, cycle and stage entered."""

    __tablename__ = "lead_stage_transitions"
    __table_args__ = (Index("ix_lead_stage_transitions_stage_entered_at", "stage", "entered_at"),)

    lead_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    cycle_no: Mapped[int] = mapped_column(primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    entered_at: Mapped[datetime]
    inferred: Mapped[bool]


class HandoffSla(Base):
    """One row per lead and cycle that entered mql."""

    __tablename__ = "handoff_sla"

    lead_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    cycle_no: Mapped[int] = mapped_column(primary_key=True)
    mql_at: Mapped[datetime]
    deadline: Mapped[datetime]
    responded_at: Mapped[datetime | None]
    response_type: Mapped[str | None] = mapped_column(String(32))
    response_seconds: Mapped[float | None]
    status: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[str | None]
    policy: Mapped[str | None] = mapped_column(String(128))  # null: the single SLA clock
    response_business_seconds: Mapped[float | None]


class FunnelDaily(Base):
    """Stage entries per UTC day, source, campaign and stage."""

    __tablename__ = "funnel_daily"

    day: Mapped[date] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(primary_key=True)
    campaign_id: Mapped[str] = mapped_column(primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    leads: Mapped[int]


class RevenueDaily(Base):
    """Won deals and their amount per UTC day of the win, source, campaign and currency."""

    __tablename__ = "revenue_daily"

    day: Mapped[date] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(primary_key=True)
    campaign_id: Mapped[str] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(primary_key=True)
    won_deals: Mapped[int]
    # Sums of many NUMERIC(18,2) amounts: room for them.
    won_amount: Mapped[Decimal] = mapped_column(ExactNumeric(38, 2))


class DeadLetterRow(Base):
    """One rejected message, keyed by where it was read and what it held: the same message read
    again is the same row, another message at a reused offset is another row."""

    __tablename__ = "dead_letters"

    topic: Mapped[str] = mapped_column(primary_key=True)
    partition: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # sha256 of the stored payload, in hex.
    payload_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]


class LeadEvent(Base):
    """One accepted distinct event: the information both teams sent, without personal data."""

    __tablename__ = "lead_events"
    __table_args__ = (
        Index("ix_lead_events_lead_id_occurred_at", "lead_id", "occurred_at"),
        Index("ix_lead_events_occurred_at", "occurred_at"),
    )

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    source_system: Mapped[str | None]
    source: Mapped[str | None]
    campaign_id: Mapped[str | None]
    channel: Mapped[str | None]
    score: Mapped[int | None]
    owner_id: Mapped[str | None]
    reason: Mapped[str | None]
    opportunity_id: Mapped[str | None]
    amount: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    received_at: Mapped[datetime]


class _LosingCopy:
    """A copy of an event_id a lead sent that lost (contract section 2), and when the store
    recorded it."""

    lead_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # sha256 of the canonical JSON of the lead's copy that lost, in hex.
    copy_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    recorded_at: Mapped[datetime]


class LeadRetraction(_LosingCopy, Base):
    """An event_id a lead sent whose copy another lead keeps (contract section 2)."""

    __tablename__ = "lead_retractions"


class LeadBeatenCopy(_LosingCopy, Base):
    """A copy of an event_id a lead sent that lost to another copy the lead sent (section 2)."""

    __tablename__ = "lead_beaten_copies"


class LeadContact(Base):
    """Personal data of a lead (from its first lead.created): never in the shared tables."""

    __tablename__ = "lead_contacts"

    lead_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    email: Mapped[str | None]
    company: Mapped[str | None]
    country: Mapped[str | None]
    updated_at: Mapped[datetime]


class Attribution(Base):
    """Campaign credit of a won lead under each model (first/last touch, linear, W-shaped)."""

    __tablename__ = "attribution"

    lead_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(16), primary_key=True)
    credit: Mapped[Decimal] = mapped_column(ExactNumeric(9, 6))
    touch_count: Mapped[int]


class SharedGoal(Base):
    """A revenue or funnel objective both teams share, for one period (``2026-Q4``, ``2026-11``)."""

    __tablename__ = "shared_goals"

    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    # '' when the metric counts every currency; won_revenue needs a real one.
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    target: Mapped[Decimal]
    updated_at: Mapped[datetime]


class FxRate(Base):
    """How many units of the reporting currency one unit of ``currency`` is worth on ``day``."""

    __tablename__ = "fx_rates"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    to_currency: Mapped[str] = mapped_column(String(3))  # the one reporting currency
    rate: Mapped[Decimal] = mapped_column(ExactNumeric(24, 10))
    loaded_at: Mapped[datetime]


class StoreSetting(Base):
    """A setting the store's rows were computed with (e.g. the SLA policies' fingerprint)."""

    __tablename__ = "store_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


TABLES = {table.name: table for table in Base.metadata.sorted_tables}

# The table handle of each model: every module takes its handles from here.
LIFECYCLE: Table = LeadLifecycle.__table__  # type: ignore[assignment]
TRANSITIONS: Table = LeadStageTransition.__table__  # type: ignore[assignment]
SLA: Table = HandoffSla.__table__  # type: ignore[assignment]
FUNNEL: Table = FunnelDaily.__table__  # type: ignore[assignment]
REVENUE: Table = RevenueDaily.__table__  # type: ignore[assignment]
DEAD_LETTERS: Table = DeadLetterRow.__table__  # type: ignore[assignment]
CONTACTS: Table = LeadContact.__table__  # type: ignore[assignment]
EVENTS: Table = LeadEvent.__table__  # type: ignore[assignment]
RETRACTIONS: Table = LeadRetraction.__table__  # type: ignore[assignment]
BEATEN: Table = LeadBeatenCopy.__table__  # type: ignore[assignment]
ATTRIBUTION: Table = Attribution.__table__  # type: ignore[assignment]
GOALS: Table = SharedGoal.__table__  # type: ignore[assignment]
FX_RATES: Table = FxRate.__table__  # type: ignore[assignment]
STORE_SETTINGS: Table = StoreSetting.__table__  # type: ignore[assignment]


def _describe(tables: dict[str, Table]) -> None:
    """Table and column comments from the data dictionary (migration 0008 writes the same)."""
    from leadflow.sinks.dictionary import DICTIONARY

    for name, table in tables.items():
        doc = DICTIONARY[name]
        table.comment = f"{doc.meaning} Grain: {doc.grain}. Key: {', '.join(doc.key)}."
        for column in table.columns:
            column.comment = doc.columns[column.name]


_describe(TABLES)
