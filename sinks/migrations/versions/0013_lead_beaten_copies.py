"""lead_beaten_copies: each copy of an event_id a lead sent that lost to another of its copies.

Readable by the teams and leadership; the writer inserts rows and never deletes them (each
counts in its lead's version, which leadflow rebuild and the recovery must find again).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadflow.sinks.dictionary import comment_statements

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READERS = "leadflow_marketing, leadflow_sales, leadflow_leadership"


def upgrade() -> None:
    op.create_table(
        "lead_beaten_copies",
        sa.Column("lead_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("copy_sha256", sa.String(64), primary_key=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"GRANT SELECT ON lead_beaten_copies TO {READERS}")
        op.execute("GRANT SELECT, INSERT ON lead_beaten_copies TO leadflow_writer")
        for statement in comment_statements(bind, ["lead_beaten_copies"]):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("lead_beaten_copies")
