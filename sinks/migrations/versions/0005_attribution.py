"""Campaign attribution of won leads: one row per lead, campaign and model.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attribution",
        sa.Column("lead_id", sa.String(128), primary_key=True),
        sa.Column("campaign_id", sa.String(), primary_key=True),
        sa.Column("model", sa.String(16), primary_key=True),
        sa.Column("credit", sa.Numeric(9, 6), nullable=False),
        sa.Column("touch_count", sa.Integer(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("GRANT SELECT ON attribution TO leadflow_marketing, leadflow_sales")
        op.execute("GRANT SELECT ON attribution TO leadflow_leadership")
        op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON attribution TO leadflow_writer")


def downgrade() -> None:
    op.drop_table("attribution")
