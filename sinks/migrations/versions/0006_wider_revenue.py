"""revenue_daily.won_amount as NUMERIC(38,2): a day's sum of valid amounts must fit.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("revenue_daily") as batch:
        batch.alter_column("won_amount", type_=sa.Numeric(38, 2), existing_type=sa.Numeric(18, 2))


def downgrade() -> None:
    with op.batch_alter_table("revenue_daily") as batch:
        batch.alter_column("won_amount", type_=sa.Numeric(18, 2), existing_type=sa.Numeric(38, 2))
