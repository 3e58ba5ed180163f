"""Folding one batch of facts into the leads they touch: the broker-free core of the agents."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from agents.codec import decode_state, encode_state
from agents.facts import Fact
from agents.fold import FoldConfig, Header, LeadFold, LeadSnapshot, header_of


@dataclass(frozen=True, slots=True)
class LeadUpdate:
    """A lead that changed: its new table value, its new rows, and what changed (for metrics)."""

    lead_id: str
    state: bytes
    snapshot: LeadSnapshot
    old: Header | None
    new: Header
    entries: frozenset[tuple[int, str]]  # (cycle, stage) entered by this change
    dropped: frozenset[tuple[int, str]]  # (cycle, stage) a late event restated away
    responded: frozenset[int]  # cycles whose first sales response came with this change


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
        old, stored = decode_state(load(lead_id))
        running = LeadFold(lead_id, config, stored)
        before = running.progress()
        flags = running.add_many(new_facts)
        for fact, new in zip(new_facts, flags, strict=True):
            result.outcomes[fact.event_type, "accepted" if new else "duplicate"] += 1
        if any(flags):
            result.updates.append(_update(running, old, before, now))
    return result


def refresh(
    lead_id: str, raw: bytes | None, config: FoldConfig, now: datetime
) -> LeadUpdate | None:
    """Re-read a lead at ``now`` with no new event: the update if the clock changed it."""
    old, stored = decode_state(raw)
    if old is None:
        return None
    running = LeadFold(lead_id, config, stored)
    update = _update(running, old, running.progress(), now)
    return update if update.new != old else None


def _update(
    running: LeadFold,
    old: Header | None,
    before: tuple[frozenset[tuple[int, str]], frozenset[int]],
    now: datetime,
) -> LeadUpdate:
    snapshot = running.snapshot(now)
    header = header_of(snapshot)
    entries, responded = running.progress()
    return LeadUpdate(
        running.lead_id,
        encode_state(header, running.facts),
        snapshot,
        old,
        header,
        entries - before[0],
        before[0] - entries,
        responded - before[1],
    )
