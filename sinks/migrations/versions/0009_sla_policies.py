"""handoff_sla.policy and response_business_seconds, for SLA policies (docs/contract.md, 8).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadflow.sinks.dictionary import comment_statements

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("handoff_sla") as batch:
        batch.add_column(sa.Column("policy", sa.String(128), nullable=True))
        batch.add_column(sa.Column("response_business_seconds", sa.Float(), nullable=True))
    # Rows written before policies existed ran on the single wall clock.
    op.execute(
        "UPDATE handoff_sla SET response_business_seconds = response_seconds"
        " WHERE response_business_seconds IS NULL"
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in comment_statements(bind, ["handoff_sla"]):
            op.execute(statement)


def downgrade() -> None:
    with op.batch_alter_table("handoff_sla") as batch:
        batch.drop_column("response_business_seconds")
        batch.drop_column("policy")
