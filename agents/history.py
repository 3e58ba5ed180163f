"""A lead's events as the store keeps them, turned back into facts: what ``leadflow rebuild``
folds, and what a worker whose Kafka state is behind the store folds again (section 7)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, text

from leadflow.agents.facts import Fact, to_micros
from leadflow.schemas.vocabulary import TYPE_RANK
from leadflow.sinks.history import events_of, stored_versions


def fact_of(row: dict[str, Any]) -> Fact:
    """The fold's fact of a lead_events row (personal data stays in lead_contacts)."""
    amount = row["amount"]
    return Fact(
        ts=to_micros(row["occurred_at"]),
        rank=TYPE_RANK[row["event_type"]],
        event_id=row["event_id"],
        source=row["source"],
        campaign_id=row["campaign_id"],
        score=row["score"],
        owner_id=row["owner_id"],
        reason=row["reason"],
        opportunity_id=row["opportunity_id"],
        amount=None if amount is None else str(amount),
        currency=row["currency"],
        channel=row["channel"],
        source_system=row["source_system"],
    )


class StoreHistory:
    """The store's versions and events, read on the caller's thread (blocking)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def versions(self, keep: Callable[[str], bool]) -> dict[str, int]:
        with self.engine.connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":  # a scan of every lead: no statement timeout
                conn.execute(text("SET LOCAL statement_timeout = 0"))
            return stored_versions(conn, keep)

    def facts(self, lead_ids: Sequence[str]) -> dict[str, list[Fact]]:
        with self.engine.connect() as conn:
            rows = events_of(conn, lead_ids)
        return {lead_id: [fact_of(row) for row in found] for lead_id, found in rows.items()}
