"""fx_rates (rates into one reporting currency), and PostgreSQL COMMENTs on every table and
column, from the data dictionary.

The comments state each table's grain and key and each column's meaning, as in
docs/data-dictionary.md; SQLite has no comments.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import inspect

from leadflow.sinks.dictionary import DICTIONARY, comment_statements

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fx_rates",
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("to_currency", sa.String(3), nullable=False),
        sa.Column("rate", sa.Numeric(24, 10), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("GRANT SELECT ON fx_rates TO leadflow_marketing, leadflow_sales")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON fx_rates TO leadflow_leadership")
    for statement in comment_statements(bind):
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.drop_table("fx_rates")
        return
    present = set(inspect(bind).get_table_names())
    for table, doc in DICTIONARY.items():
        if table not in present:
            continue
        op.execute(f'COMMENT ON TABLE "{table}" IS NULL')
        columns = {c["name"] for c in inspect(bind).get_columns(table)}
        for column in doc.columns.keys() & columns:
            op.execute(f'COMMENT ON COLUMN "{table}"."{column}" IS NULL')
    op.drop_table("fx_rates")
