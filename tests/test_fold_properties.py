"""Hypothesis properties of the fold: any order, any duplicates, same result."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.agents import fold as fold_module
from leadflow.agents.facts import Fact
from leadflow.agents.fold import LeadFold, fold
from tests.support.fold_cases import CONFIG, NOW, facts


@st.composite
def leads(draw: st.DrawFn) -> list[Fact]:
    size = draw(st.integers(min_value=1, max_value=14))
    return [draw(facts(i)) for i in range(size)]


@settings(max_examples=300, deadline=None)
@given(events=leads(), data=st.data())
def test_any_order_and_duplicates_fold_to_the_same_result(
    events: list[Fact], data: st.DataObject
) -> None:
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    shuffled = data.draw(st.permutations(events + duplicates))
    assert fold("L", shuffled, CONFIG, NOW) == fold("L", events, CONFIG, NOW)


@settings(max_examples=300, deadline=None)
@given(events=leads(), data=st.data())
def test_adding_one_by_one_equals_folding_at_once(events: list[Fact], data: st.DataObject) -> None:
    order = data.draw(st.permutations(events + events[:2]))
    running = LeadFold("L", CONFIG)
    for fact in order:
        running.add(fact)
    assert running.snapshot(NOW) == fold("L", events, CONFIG, NOW)


@settings(max_examples=200, deadline=None)
@given(events=leads())
def test_invariants_of_any_lead(events: list[Fact]) -> None:
    snap = fold("L", events, CONFIG, NOW)
    row = snap.lifecycle
    assert row["event_count"] == len({f.event_id for f in events})
    keys = [(t["cycle_no"], t["stage"]) for t in snap.transitions]
    assert len(keys) == len(set(keys)), "a stage is entered at most once per cycle"
    times = [t["entered_at"] for t in snap.transitions]
    assert times == sorted(times), "transitions are entered in time order"
    if snap.transitions:
        assert row["stage"] == snap.transitions[-1]["stage"]
        assert row["cycle_no"] == snap.transitions[-1]["cycle_no"]
    assert [s["cycle_no"] for s in snap.sla] == sorted(
        {t["cycle_no"] for t in snap.transitions if t["stage"] == "mql"}
    )
    assert row["is_orphan"] == (row["source"] is None)
    for sla in snap.sla:
        if sla["response_seconds"] is not None:
            assert sla["response_seconds"] >= 0
        assert sla["status"] in ("met", "breached", "pending")


@settings(max_examples=200, deadline=None)
@given(events=leads(), data=st.data())
def test_adding_in_chunks_equals_folding_at_once(events: list[Fact], data: st.DataObject) -> None:
    order = data.draw(st.permutations(events + events[:3]))
    cut = data.draw(st.integers(min_value=0, max_value=len(order)))
    running = LeadFold("L", CONFIG)
    first = running.add_many(order[:cut])
    second = running.add_many(order[cut:])
    assert sum(first) + sum(second) == len({f.event_id for f in events})
    assert running.snapshot(NOW) == fold("L", events, CONFIG, NOW)


@settings(max_examples=300, deadline=None)
@given(
    events=st.integers(min_value=1, max_value=40).flatmap(
        lambda n: st.tuples(*(facts(i) for i in range(n))).map(list)
    ),
    data=st.data(),
)
def test_late_events_replay_from_marks_to_the_same_result(
    events: list[Fact], data: st.DataObject
) -> None:
    """With a mark every 1 to 4 facts, late events replay from a mark; same result."""
    order = data.draw(st.permutations(events + events[:3]))
    every = data.draw(st.integers(min_value=1, max_value=4))
    saved, fold_module.MARK_EVERY = fold_module.MARK_EVERY, every
    try:
        running = LeadFold("L", CONFIG, order[: len(order) // 3])
        rest = order[len(order) // 3 :]
        while rest:
            size = data.draw(st.integers(min_value=1, max_value=len(rest)))
            if size == 1:
                running.add(rest[0])
            else:
                running.add_many(rest[:size])
            rest = rest[size:]
            assert running.snapshot(NOW) == fold("L", running.facts, CONFIG, NOW)
    finally:
        fold_module.MARK_EVERY = saved
    assert running.snapshot(NOW) == fold("L", events, CONFIG, NOW)
