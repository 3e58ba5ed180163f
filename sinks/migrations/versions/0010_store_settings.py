"""store_settings: what the derived rows were computed with (the SLA policies' fingerprint).

Readable by the teams and leadership; the writer (the worker, ``leadflow rebuild``) inserts and
updates it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadflow.sinks.dictionary import comment_statements

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READERS = "leadflow_marketing, leadflow_sales, leadflow_leadership"


def upgrade() -> None:
    op.create_table(
        "store_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"GRANT SELECT ON store_settings TO {READERS}")
        op.execute("GRANT SELECT, INSERT, UPDATE ON store_settings TO leadflow_writer")
        for statement in comment_statements(bind, ["store_settings"]):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("store_settings")
