"""A store whose every free-text field holds markup, formula or HTML payloads."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow.agents.facts import Fact
from leadflow.agents.fold import FoldConfig, fold
from leadflow.schemas.classify import classify
from leadflow.schemas.events import BaseEvent
from leadflow.schemas.vocabulary import topic_kind_of
from leadflow.sinks import SqlSink, make_engine, upgrade

PAYLOADS = (
    "[/bold]",
    "[red]x",
    '=HYPERLINK("http://x")',
    "+1+1",
    "@SUM(A1)",
    "-2+3",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    ":smile:",
)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CONFIG = FoldConfig(24 * 3600.0, frozenset({"not_now"}))


def _event(kind: str, lead: str, n: int, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"{lead}#{n}",
        "event_type": kind,
        "lead_id": lead,
        "occurred_at": at.isoformat(),
        **fields,
    }


def journey(payload: str, index: int) -> list[dict[str, Any]]:
    """Events of one lead with ``payload`` as its id and in every free-text field it has."""
    at = datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(days=index)
    hour = timedelta(hours=1)
    events = [
        _event("lead.created", payload, 1, at, source=payload, campaign_id=payload),
        _event("lead.touch", payload, 2, at + hour, campaign_id=payload),
        _event("lead.mql", payload, 3, at + 2 * hour, campaign_id=payload),
        _event("lead.assigned", payload, 4, at + 3 * hour, owner_id=payload),
        _event("lead.contacted", payload, 5, at + 4 * hour, owner_id=payload),
    ]
    if index % 2:
        return [*events, _event("lead.rejected", payload, 6, at + 5 * hour, reason=payload)]
    money = {"opportunity_id": payload, "amount": "100.50", "currency": "EUR"}
    return [
        *events,
        _event("lead.accepted", payload, 6, at + 5 * hour, owner_id=payload),
        _event("opportunity.created", payload, 7, at + 6 * hour, **money),
        _event("deal.won", payload, 8, at + 7 * hour, **money),
    ]


def write_hostile_store(url: str) -> None:
    """Migrate ``url`` and write one lead per payload (half won, half rejected)."""
    upgrade(url)
    facts: dict[str, list[Fact]] = defaultdict(list)
    for index, payload in enumerate(PAYLOADS):
        for body in journey(payload, index):
            kind = topic_kind_of(body["event_type"])
            event = classify(json.dumps(body).encode(), kind, NOW)
            assert isinstance(event, BaseEvent), (body, event)
            facts[event.lead_id].append(Fact.from_event(event))
    snapshots = [fold(lead, lead_facts, CONFIG, NOW) for lead, lead_facts in facts.items()]
    engine = make_engine(url)
    try:
        SqlSink(engine).write_batch(snapshots, [], NOW)
    finally:
        engine.dispose()
