"""Who may read what, on PostgreSQL: the teams read the shared tables, leadership also the
personal data and raw dead letters, and the worker writes what it needs and no more.

Roles are cluster-wide and created once (WITH LOGIN, no password: the DBA sets passwords or
maps them to people); grants are made on the tables of the schema being migrated.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARED = (
    "lead_lifecycle",
    "lead_stage_transitions",
    "handoff_sla",
    "funnel_daily",
    "revenue_daily",
    "shared_goals",
)
RESTRICTED = ("lead_contacts", "dead_letters")  # personal data; raw payloads may hold it too
WRITTEN = (
    "lead_lifecycle",
    "lead_stage_transitions",
    "handoff_sla",
    "funnel_daily",
    "revenue_daily",
    "lead_contacts",
    "dead_letters",
)
ROLES = ("leadflow_marketing", "leadflow_sales", "leadflow_leadership", "leadflow_writer")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no roles: file permissions are its access control
    for role in ROLES:
        op.execute(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role} LOGIN; END IF; END $$"
        )
    schema = "current_schema()"
    op.execute(
        "DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO "
        + ", ".join(ROLES)
        + f"', {schema}); END $$"
    )
    shared = ", ".join(SHARED)
    op.execute(f"GRANT SELECT ON {shared} TO leadflow_marketing, leadflow_sales")
    op.execute(f"GRANT SELECT ON {shared}, {', '.join(RESTRICTED)} TO leadflow_leadership")
    op.execute("GRANT INSERT, UPDATE, DELETE ON shared_goals TO leadflow_leadership")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(WRITTEN)} TO leadflow_writer")
    op.execute("GRANT SELECT ON shared_goals, alembic_version TO leadflow_writer")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    tables = ", ".join(sorted({*SHARED, *RESTRICTED, *WRITTEN, "alembic_version"}))
    op.execute(f"REVOKE ALL ON {tables} FROM {', '.join(ROLES)}")
