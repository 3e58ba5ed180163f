"""Folding one batch of facts into the leads they touch: the broker-free core of the agents."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from agents.codec import decode_facts, encode_facts
from agents.facts import Fact
from agents.fold import FoldConfig, LeadFold, LeadSnapshot


@dataclass(frozen=True, slots=True)
class LeadUpdate:
    """A lead that changed in this batch: its new table value and its new rows."""

    lead_id: str
    state: bytes
    snapshot: LeadSnapshot


@dataclass(slots=True)
class BatchResult:
    """The changed leads, and how many events of each type were new or duplicates."""

    updates: list[LeadUpdate] = field(default_factory=list)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)


def fold_batch(
    facts: Iterable[tuple[str, Fact]],
    load: Callable[[str], bytes | None],
    config: FoldConfig,
    now: datetime,
) -> BatchResult:
    """Add each (lead_id, fact) to its lead's stored state; one update per changed lead."""
    by_lead: dict[str, list[Fact]] = {}
    for lead_id, fact in facts:
        by_lead.setdefault(lead_id, []).append(fact)
    result = BatchResult()
    for lead_id, new_facts in by_lead.items():
        running = LeadFold(lead_id, config, decode_facts(load(lead_id)))
        added = 0
        for fact in new_facts:
            if running.add(fact):
                added += 1
                result.outcomes[fact.event_type, "accepted"] += 1
            else:
                result.outcomes[fact.event_type, "duplicate"] += 1
        if added:
            result.updates.append(
                LeadUpdate(lead_id, encode_facts(running.facts), running.snapshot(now))
            )
    return result
