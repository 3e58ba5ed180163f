"""How many events per second the pure fold absorbs on one core (a benchmark, not a test)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from leadflow.agents.facts import Fact
from leadflow.agents.fold import FoldConfig, LeadFold, fold
from leadflow.schemas.vocabulary import TYPE_RANK

CONFIG = FoldConfig(sla_seconds=86_400.0, recycle_reasons=frozenset({"nurture", "not_now"}))
NOW = datetime(2026, 6, 1, tzinfo=UTC)
JOURNEY = [
    "lead.created",
    "lead.touch",
    "lead.scored",
    "lead.mql",
    "lead.assigned",
    "lead.contacted",
    "lead.accepted",
    "opportunity.created",
    "deal.won",
]


def journey(lead: int, rng: random.Random) -> list[Fact]:
    ts = 1_767_225_600_000_000 + rng.randrange(10**12)
    facts = []
    for n, event_type in enumerate(JOURNEY):
        ts += rng.randrange(1, 3_600_000_000 * 30)
        rank = TYPE_RANK[event_type]
        facts.append(
            Fact(
                ts,
                rank,
                f"L{lead}-e{n}",
                source="web" if rank == 0 else None,
                owner_id="rep" if rank >= 4 else None,
                amount="100.00" if rank in (8, 9) else None,
                currency="EUR" if rank in (8, 9) else None,
                opportunity_id="O" if rank in (8, 9) else None,
            )
        )
    return facts


def main() -> None:
    rng = random.Random(7)
    leads = [journey(i, rng) for i in range(20_000)]
    events = sum(len(f) for f in leads)

    start = time.perf_counter()
    for i, facts in enumerate(leads):
        fold(f"L{i}", facts, CONFIG, NOW)
    refold = events / (time.perf_counter() - start)

    start = time.perf_counter()
    for i, facts in enumerate(leads):
        running = LeadFold(f"L{i}", CONFIG)
        for fact in facts:
            running.add(fact)
    incremental = events / (time.perf_counter() - start)

    start = time.perf_counter()
    for i, facts in enumerate(leads):
        running = LeadFold(f"L{i}", CONFIG)
        for fact in facts:
            running.add(fact)
            running.snapshot(NOW)
    with_snapshots = events / (time.perf_counter() - start)

    start = time.perf_counter()
    for i, facts in enumerate(leads):
        shuffled = facts[:]
        rng.shuffle(shuffled)
        running = LeadFold(f"L{i}", CONFIG)
        for fact in shuffled:
            running.add(fact)
    shuffled_rate = events / (time.perf_counter() - start)

    print(f"fold: {events} events of {len(leads)} leads, one core")
    print(f"  whole-lead fold          {refold:12,.0f} events/s")
    print(f"  incremental, in order    {incremental:12,.0f} events/s")
    print(f"  incremental, shuffled    {shuffled_rate:12,.0f} events/s")
    print(f"  incremental + snapshot   {with_snapshots:12,.0f} events/s")


if __name__ == "__main__":
    main()
