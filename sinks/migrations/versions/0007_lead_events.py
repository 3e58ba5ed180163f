"""The event history and the dead-letter key of contract version 2, and least privilege.

- ``lead_events``: one row per accepted distinct event (no personal data), indexed per lead and
  by time; readable by the teams and leadership, inserted and restated (never deleted) by the
  writer.
- ``dead_letters`` keyed by (topic, partition, offset, payload_hash): the same message read
  again is one row, another message at a reused offset is another.
- ``leadflow_writer`` inserts dead letters but neither updates nor deletes them, and never
  deletes contacts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
READERS = "leadflow_marketing, leadflow_sales, leadflow_leadership"
_DEAD_LETTER_COLUMNS = 'topic, partition, "offset", reason, error, payload, received_at'


def upgrade() -> None:
    _create_lead_events()
    if op.get_bind().dialect.name == "postgresql":
        _rekey_dead_letters_postgresql()
        _grant()
    else:
        _rekey_dead_letters_sqlite()


def _create_lead_events() -> None:
    op.create_table(
        "lead_events",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("lead_id", sa.String(128), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("occurred_at", UTC_TIME, nullable=False),
        sa.Column("source_system", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("campaign_id", sa.String(), nullable=True),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("opportunity_id", sa.String(), nullable=True),
        sa.Column("amount", sa.Numeric(18, 2), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("received_at", UTC_TIME, nullable=False),
    )
    op.create_index("ix_lead_events_lead_id_occurred_at", "lead_events", ["lead_id", "occurred_at"])
    op.create_index("ix_lead_events_occurred_at", "lead_events", ["occurred_at"])


def _rekey_dead_letters_postgresql() -> None:
    op.add_column("dead_letters", sa.Column("payload_hash", sa.String(64), nullable=True))
    op.execute(
        "UPDATE dead_letters SET payload_hash = encode(sha256(convert_to(payload, 'UTF8')), 'hex')"
    )
    op.alter_column("dead_letters", "payload_hash", nullable=False)
    op.execute("ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_pkey")
    op.create_primary_key(
        "dead_letters_pkey", "dead_letters", ["topic", "partition", "offset", "payload_hash"]
    )


def _sha256_hex(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def _rekey_dead_letters_sqlite() -> None:
    """SQLite cannot change a primary key: a new table, filled from the old one."""
    op.create_table(
        "dead_letters_new",
        sa.Column("topic", sa.String(), primary_key=True),
        sa.Column("partition", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("offset", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("payload_hash", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
    )
    driver = op.get_bind().connection.driver_connection
    assert driver is not None  # a live connection: migrations run on one
    driver.create_function("leadflow_sha256_hex", 1, _sha256_hex, deterministic=True)
    op.execute(
        f"INSERT INTO dead_letters_new ({_DEAD_LETTER_COLUMNS}, payload_hash) "
        f"SELECT {_DEAD_LETTER_COLUMNS}, leadflow_sha256_hex(payload) FROM dead_letters"
    )
    op.drop_table("dead_letters")
    op.rename_table("dead_letters_new", "dead_letters")


def _grant() -> None:
    op.execute(f"GRANT SELECT ON lead_events TO {READERS}")
    # UPDATE: the winning copy of a conflicting duplicate replaces the losing one's row.
    op.execute("GRANT SELECT, INSERT, UPDATE ON lead_events TO leadflow_writer")
    op.execute("REVOKE UPDATE, DELETE ON dead_letters FROM leadflow_writer")
    op.execute("REVOKE DELETE ON lead_contacts FROM leadflow_writer")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("GRANT UPDATE, DELETE ON dead_letters, lead_contacts TO leadflow_writer")
        # Messages that shared an offset keep the first one stored.
        op.execute(
            "DELETE FROM dead_letters d USING dead_letters e WHERE d.topic = e.topic AND "
            'd.partition = e.partition AND d."offset" = e."offset" AND '
            "(d.received_at, d.payload_hash) > (e.received_at, e.payload_hash)"
        )
        op.execute("ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_pkey")
        op.create_primary_key("dead_letters_pkey", "dead_letters", ["topic", "partition", "offset"])
        op.drop_column("dead_letters", "payload_hash")
    else:
        with op.batch_alter_table("dead_letters", recreate="always") as batch:
            batch.drop_column("payload_hash")
    op.drop_index("ix_lead_events_occurred_at", "lead_events")
    op.drop_index("ix_lead_events_lead_id_occurred_at", "lead_events")
    op.drop_table("lead_events")
