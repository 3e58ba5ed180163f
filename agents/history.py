"""A lead's events as the store keeps them, turned back into facts: what ``leadflow rebuild``
folds, and what a worker whose Kafka state is behind the store folds again (section 7)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, text

from leadflow.agents.facts import Fact, to_micros
from leadflow.schemas.vocabulary import TYPE_RANK
from leadflow.sinks.history import (
    contacts_of,
    events_of,
    losses_of,
    recorded_losses,
    stored_versions,
    unrecorded,
)
from leadflow.sinks.models import BEATEN


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

    def unrecorded(self, keep: Callable[[str], bool]) -> list[str]:
        with self.engine.connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":  # a scan of every lead: no statement timeout
                conn.execute(text("SET LOCAL statement_timeout = 0"))
            return unrecorded(conn, keep)

    def losses(self, keep: Callable[[str], bool]) -> dict[str, dict[str, set[str]]]:
        with self.engine.connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":  # a scan of every loss: no statement timeout
                conn.execute(text("SET LOCAL statement_timeout = 0"))
            return recorded_losses(conn, keep)

    def beaten(self, lead_ids: Sequence[str]) -> dict[str, dict[str, set[str]]]:
        with self.engine.connect() as conn:
            return losses_of(conn, lead_ids, BEATEN)

    def facts(self, lead_ids: Sequence[str]) -> dict[str, list[Fact]]:
        """Each lead's stored events; its first lead.created gets back the personal data that
        lead_contacts keeps of it, so that it equals the copy the producer sent."""
        with self.engine.connect() as conn:
            rows = events_of(conn, lead_ids)
            contacts = contacts_of(conn, list(rows))
        found = {lead_id: sorted(map(fact_of, events)) for lead_id, events in rows.items()}
        for lead_id, contact in contacts.items():
            _restore_contact(found.get(lead_id, []), contact)
        return found


def _restore_contact(facts: list[Fact], contact: dict[str, Any]) -> None:
    for index, fact in enumerate(facts):
        if fact.rank == TYPE_RANK["lead.created"]:
            personal = {k: contact[k] for k in ("email", "company", "country")}
            facts[index] = fact._replace(**personal)
            return
