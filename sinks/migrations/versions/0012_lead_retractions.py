"""lead_retractions: each lead whose copy of an event_id lost to another lead's (section 2).

Readable by the teams and leadership; the writer inserts rows and never deletes them (they are
the tombstones of leads left with no event), and may delete the lifecycle rows of such a lead.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadflow.sinks.dictionary import comment_statements

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READERS = "leadflow_marketing, leadflow_sales, leadflow_leadership"


def upgrade() -> None:
    op.create_table(
        "lead_retractions",
        sa.Column("lead_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("copy_sha256", sa.String(64), primary_key=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"GRANT SELECT ON lead_retractions TO {READERS}")
        op.execute("GRANT SELECT, INSERT ON lead_retractions TO leadflow_writer")
        for statement in comment_statements(bind, ["lead_retractions"]):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("lead_retractions")
