"""Exact numbers on SQLite: amounts, credits, targets and rates as integer units of 10**-scale.

PostgreSQL keeps NUMERIC and is left unchanged. On SQLite each exact column holds the integer
count of its smallest unit (cents for money), which ExactNumeric reads back as a Decimal and
SUM adds exactly.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, scale): every ExactNumeric column of the models.
EXACT_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("lead_lifecycle", "amount", 2),
    ("lead_events", "amount", 2),
    ("revenue_daily", "won_amount", 2),
    ("attribution", "credit", 6),
    ("shared_goals", "target", 2),
    ("fx_rates", "rate", 10),
)

_LARGEST_UNITS = 2**63 - 1  # SQLite's largest integer


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _check_fits(table: str, column: str, scale: int) -> None:
    found = op.get_bind().exec_driver_sql(
        f"SELECT MAX(ABS({column})) FROM {table} WHERE {column} IS NOT NULL"
    )
    largest = found.scalar()
    if largest is not None and float(largest) * 10**scale >= _LARGEST_UNITS:
        raise RuntimeError(f"{table}.{column} holds {largest}: too large for exact SQLite storage")


def upgrade() -> None:
    if not _sqlite():
        return
    for table, column, scale in EXACT_COLUMNS:
        _check_fits(table, column, scale)
        # The stored doubles came from decimals with at most `scale` places: rounding recovers them.
        op.execute(
            f"UPDATE {table} SET {column} = CAST(ROUND({column} * {10**scale}) AS INTEGER)"
            f" WHERE {column} IS NOT NULL"
        )


def downgrade() -> None:
    if not _sqlite():
        return
    for table, column, scale in EXACT_COLUMNS:
        op.execute(
            f"UPDATE {table} SET {column} = {column} / {float(10**scale)!r}"
            f" WHERE {column} IS NOT NULL"
        )
