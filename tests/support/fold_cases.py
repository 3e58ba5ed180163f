"""Hypothesis strategies of facts for the fold tests."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from leadflow.agents.facts import Fact
from leadflow.agents.fold import FoldConfig
from leadflow.schemas.vocabulary import TYPE_RANK

CONFIG = FoldConfig(sla_seconds=24 * 3600.0, recycle_reasons=frozenset({"nurture", "timing"}))


NOW = datetime(2026, 6, 1, tzinfo=UTC)


@st.composite
def facts(draw: st.DrawFn, index: int) -> Fact:
    event_type = draw(st.sampled_from(sorted(TYPE_RANK)))
    rank = TYPE_RANK[event_type]
    amount = draw(st.sampled_from(["0", "10.50", "999.99"]))
    return Fact(
        ts=draw(timestamps),
        rank=rank,
        event_id=f"e{index}",
        source=draw(st.sampled_from(["web", "ads"])) if rank == 0 else None,
        campaign_id=draw(maybe) if rank in (0, 1, 3) else None,
        score=draw(st.none() | st.integers(0, 100)) if rank in (2, 3) else None,
        owner_id=draw(maybe) if rank >= 4 else None,
        reason=draw(st.sampled_from(["nurture", "timing", "bad_fit", None]))
        if rank in (7, 10)
        else None,
        opportunity_id=draw(st.sampled_from(["O1", "O2"])) if rank in (8, 9, 10) else None,
        amount=amount if rank in (8, 9) else None,
        currency=draw(st.sampled_from(["EUR", "USD"])) if rank in (8, 9) else None,
    )


BASE_US = 1_767_225_600_000_000  # 2026-01-01


HOUR_US = 3_600_000_000


# A few distinct instants, so that ties between timestamps are frequent.
timestamps = st.integers(min_value=0, max_value=60).map(lambda h: BASE_US + h * HOUR_US)


maybe = st.one_of(st.none(), st.sampled_from(["a", "b"]))
