"""The synthetic traffic generator: reproducible, realistic, honest about its bad messages."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from leadflow.agents.facts import Fact
from leadflow.agents.fold import FoldConfig, fold
from leadflow.pipeline.publish.simulate import CHANNEL_SHARES, SimMessage, simulate, valid_events
from leadflow.schemas.classify import Rejection, classify
from leadflow.schemas.events import BaseEvent
from leadflow.schemas.vocabulary import REJECTION_REASONS as REASONS

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CONFIG = FoldConfig(24 * 3600.0, frozenset({"not_now", "nurture", "no_budget", "timing"}))


@pytest.fixture(scope="module")
def traffic() -> list[SimMessage]:
    return simulate(3000, seed=11, start=START)


@pytest.fixture(scope="module")
def events(traffic: list[SimMessage]) -> list[BaseEvent]:
    out = []
    for message in valid_events(traffic):
        verdict = classify(message.value, message.topic_kind, START)
        assert isinstance(verdict, BaseEvent), (verdict, message.value)
        out.append(verdict)
    return out


def bodies(messages: list[SimMessage]) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in messages]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first = simulate(200, seed=5, start=START, key_mode="random")
    assert first == simulate(200, seed=5, start=START, key_mode="random")
    assert first != simulate(200, seed=6, start=START, key_mode="random")


def test_every_message_classifies_as_flagged(traffic: list[SimMessage]) -> None:
    reasons: Counter[str] = Counter()
    for message in traffic:
        verdict = classify(message.value, message.topic_kind, START)
        assert isinstance(verdict, Rejection) is not message.valid, (verdict, message.value)
        if isinstance(verdict, Rejection):
            reasons[verdict.reason] += 1
    assert set(reasons) == set(REASONS)


def test_bad_and_duplicate_shares(traffic: list[SimMessage]) -> None:
    distinct = len(valid_events(traffic))
    bad = sum(not m.valid for m in traffic)
    duplicates = sum(m.valid for m in traffic) - distinct
    assert bad == round(distinct * 0.01)
    assert duplicates == round(distinct * 0.03)


def test_duplicates_repeat_the_same_bytes_later(traffic: list[SimMessage]) -> None:
    seen: dict[bytes, SimMessage] = {}
    repeats = 0
    for message in traffic:
        if message.valid and message.value in seen:
            assert seen[message.value] == message
            repeats += 1
        seen.setdefault(message.value, message)
    assert repeats > 0


def test_some_leads_arrive_out_of_order(events: list[BaseEvent]) -> None:
    arrival: dict[str, list[datetime]] = defaultdict(list)
    for event in events:
        arrival[event.lead_id].append(event.occurred_at)
    shuffled = sum(times != sorted(times) for times in arrival.values())
    assert 0.05 * len(arrival) < shuffled < len(arrival)


def test_nothing_in_the_future_and_offsets_vary(
    traffic: list[SimMessage], events: list[BaseEvent]
) -> None:
    assert max(e.occurred_at for e in events) <= START
    stamps = [b["occurred_at"] for b in bodies(valid_events(traffic))]
    assert any(s.endswith("Z") for s in stamps)
    assert any(s.endswith("+00:00") for s in stamps)
    assert any(s[-6:] not in ("+00:00",) and not s.endswith("Z") for s in stamps)


def test_event_ids_unique(events: list[BaseEvent]) -> None:
    assert len({e.event_id for e in events}) == len(events)


def test_funnel_proportions(events: list[BaseEvent]) -> None:
    by_type: dict[str, set[str]] = defaultdict(set)
    for event in events:
        by_type[event.event_type].add(event.lead_id)  # type: ignore[attr-defined]
    mql_leads = len(by_type["lead.mql"])
    assert 0.33 < mql_leads / 3000 < 0.47
    assert 0.07 < len(by_type["deal.won"]) / mql_leads < 0.14
    assert len(by_type["deal.lost"]) > len(by_type["deal.won"]) / 2
    created = [e for e in events if e.event_type == "lead.created"]  # type: ignore[attr-defined]
    sources = Counter(e.source for e in created)  # type: ignore[attr-defined]
    assert set(sources) <= set(CHANNEL_SHARES)
    assert 0.24 < sources["organic_search"] / len(created) < 0.33
    assert sources.most_common(1)[0][0] == "organic_search"


def test_money_and_reasons(events: list[BaseEvent]) -> None:
    money = [e.__dict__ for e in events if "amount" in e.__dict__]
    assert money
    assert {m["currency"] for m in money} <= {"EUR", "USD", "BRL", "GBP"}
    assert all(m["amount"] == m["amount"].quantize(Decimal("0.01")) for m in money)
    rejections = [e.__dict__ for e in events if e.__dict__["event_type"] == "lead.rejected"]
    reasons = {r["reason"] for r in rejections}
    assert {"not_now", "nurture", "no_budget", "timing"} <= reasons
    assert {"bad_fit", "duplicate", "no_fit"} <= reasons


def test_fold_sees_requalification_sla_mix_and_orphans(events: list[BaseEvent]) -> None:
    facts: dict[str, list[Fact]] = defaultdict(list)
    for event in events:
        facts[event.lead_id].append(Fact.from_event(event))
    snapshots = [fold(lead_id, f, CONFIG, START) for lead_id, f in facts.items()]
    stages = Counter(s.lifecycle["stage"] for s in snapshots)
    assert {"lead", "mql", "sal", "sql", "won", "lost", "recycled", "disqualified"} <= set(stages)
    assert any(s.lifecycle["cycle_no"] == 2 for s in snapshots)
    assert any(s.lifecycle["is_orphan"] for s in snapshots)
    sla = Counter(row["status"] for s in snapshots for row in s.sla)
    assert sla["met"] > sla["breached"] > 0.2 * sla["met"]


@pytest.mark.parametrize("key_mode", ["lead_id", "none", "random"])
def test_key_modes(key_mode: str) -> None:
    messages = simulate(50, seed=3, start=START, key_mode=key_mode)
    keys = [m.key for m in messages]
    if key_mode == "lead_id":
        assert all(m.key == (m.lead_id or "").encode() for m in messages)
    elif key_mode == "none":
        assert set(keys) == {None}
    else:
        assert len(set(keys)) > 0.9 * len(keys)
    values = [m.value for m in simulate(50, seed=3, start=START)]
    assert [m.value for m in messages] == values  # the key mode never changes the events


def test_clean_traffic_and_edge_arguments() -> None:
    clean = simulate(100, seed=1, start=START, bad_share=0.0, duplicate_share=0.0)
    assert clean and all(m.valid for m in clean) and valid_events(clean) == clean
    assert simulate(0, seed=1, start=START) == []
    with pytest.raises(ValueError):
        simulate(10, seed=1, start=datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        simulate(10, seed=1, start=START, key_mode="partition")


def test_in_order_when_window_is_zero() -> None:
    messages = simulate(
        100, seed=2, start=START, bad_share=0.0, duplicate_share=0.0, shuffle_window=0
    )
    times = [classify(m.value, m.topic_kind, START) for m in messages]
    moments = [t.occurred_at for t in times if isinstance(t, BaseEvent)]
    assert moments == sorted(moments)
