"""The initial shared store: every table of docs/contract.md, section 4.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
MONEY = sa.Numeric(18, 2)


def upgrade() -> None:
    op.create_table(
        "lead_lifecycle",
        sa.Column("lead_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=True),
        sa.Column("cycle_no", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("campaign_id", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        *(
            sa.Column(f"{stage}_at", UTC_TIME, nullable=True)
            for stage in ("lead", "mql", "sal", "sql", "won", "lost", "recycled", "disqualified")
        ),
        sa.Column("first_contact_at", UTC_TIME, nullable=True),
        sa.Column("rejection_reason", sa.String(), nullable=True),
        sa.Column("lost_reason", sa.String(), nullable=True),
        sa.Column("opportunity_id", sa.String(), nullable=True),
        sa.Column("amount", MONEY, nullable=True),
        sa.Column("currency", sa.String(), nullable=True),
        sa.Column("sla_status", sa.String(16), nullable=True),
        sa.Column("response_seconds", sa.Float(), nullable=True),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("is_orphan", sa.Boolean(), nullable=False),
        sa.Column("last_event_at", UTC_TIME, nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
    )
    op.create_index("ix_lead_lifecycle_stage_won_at", "lead_lifecycle", ["stage", "won_at"])
    op.create_table(
        "lead_stage_transitions",
        sa.Column("lead_id", sa.String(128), primary_key=True),
        sa.Column("cycle_no", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("stage", sa.String(16), primary_key=True),
        sa.Column("entered_at", UTC_TIME, nullable=False),
        sa.Column("inferred", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ix_lead_stage_transitions_stage_entered_at",
        "lead_stage_transitions",
        ["stage", "entered_at"],
    )
    op.create_table(
        "handoff_sla",
        sa.Column("lead_id", sa.String(128), primary_key=True),
        sa.Column("cycle_no", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("mql_at", UTC_TIME, nullable=False),
        sa.Column("deadline", UTC_TIME, nullable=False),
        sa.Column("responded_at", UTC_TIME, nullable=True),
        sa.Column("response_type", sa.String(32), nullable=True),
        sa.Column("response_seconds", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.String(), nullable=True),
    )
    op.create_table(
        "funnel_daily",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("source", sa.String(), primary_key=True),
        sa.Column("campaign_id", sa.String(), primary_key=True),
        sa.Column("stage", sa.String(16), primary_key=True),
        sa.Column("leads", sa.Integer(), nullable=False),
    )
    op.create_table(
        "revenue_daily",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("source", sa.String(), primary_key=True),
        sa.Column("campaign_id", sa.String(), primary_key=True),
        sa.Column("currency", sa.String(), primary_key=True),
        sa.Column("won_deals", sa.Integer(), nullable=False),
        sa.Column("won_amount", MONEY, nullable=False),
    )
    op.create_table(
        "dead_letters",
        sa.Column("topic", sa.String(), primary_key=True),
        sa.Column("partition", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("offset", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "dead_letters",
        "revenue_daily",
        "funnel_daily",
        "handoff_sla",
        "lead_stage_transitions",
        "lead_lifecycle",
    ):
        op.drop_table(table)
