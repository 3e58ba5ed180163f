"""Attribution credits: hand-computed scenarios, exact sums, and order/duplicate independence."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.agents.attribution import attribution_rows
from leadflow.agents.facts import Fact
from leadflow.agents.fold import fold
from leadflow.schemas.vocabulary import ATTRIBUTION_MODELS as MODELS
from leadflow.schemas.vocabulary import TYPE_RANK
from tests.support.golden import Scenario, config_of, facts_of, load_scenarios

SCENARIOS = {s.name[:2]: s for s in load_scenarios()}
HOUR = 3_600_000_000


def credits(rows: list[dict[str, object]]) -> dict[str, dict[str, Decimal]]:
    out: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for row in rows:
        out[str(row["model"])][str(row["campaign_id"])] = Decimal(str(row["credit"]))
    return dict(out)


def is_won(scenario: Scenario, facts: list[Fact]) -> bool:
    snapshot = fold(scenario.lead_id, facts, config_of(scenario), scenario.now)
    return snapshot.lifecycle["stage"] == "won"


def assert_sums_to_one(rows: list[dict[str, object]]) -> None:
    for model, per_campaign in credits(rows).items():
        assert sum(per_campaign.values()) == Decimal(1), model
        for credit in per_campaign.values():
            assert credit == credit.quantize(Decimal("0.000001"))
    assert {str(r["model"]) for r in rows} == set(MODELS)


def fact(ts_hours: int, kind: str, event_id: str, campaign: str | None = None) -> Fact:
    return Fact(ts_hours * HOUR, TYPE_RANK[kind], event_id, campaign_id=campaign)


# -- scenario 01 -----------------------------------------------------------------------------


def test_scenario_01_by_hand() -> None:
    # Touches: lead.created C-spring (03-02 09:00), lead.touch C-webinar (09:05); the lead.mql
    # (03-04) has no campaign, so the MQL touch is the last touch before it: C-webinar.
    # W-shaped: first 30% + creation 30% -> C-spring, MQL 30% -> C-webinar, no other touch, so
    # the 10% is split over the two distinct positions: 65% / 35%.
    scenario = SCENARIOS["01"]
    facts = facts_of(scenario)
    assert is_won(scenario, facts)
    rows = attribution_rows(scenario.lead_id, facts, won=True)
    assert credits(rows) == {
        "first_touch": {"C-spring": Decimal(1), "C-webinar": Decimal(0)},
        "last_touch": {"C-spring": Decimal(0), "C-webinar": Decimal(1)},
        "linear": {"C-spring": Decimal("0.5"), "C-webinar": Decimal("0.5")},
        "w_shaped": {"C-spring": Decimal("0.65"), "C-webinar": Decimal("0.35")},
    }
    assert {r["touch_count"] for r in rows} == {1}
    assert {r["lead_id"] for r in rows} == {"L-1"}
    assert_sums_to_one(rows)


def test_scenario_02_is_01_out_of_order_with_duplicates() -> None:
    rows_01 = attribution_rows("L-1", facts_of(SCENARIOS["01"]), won=True)
    facts_02 = facts_of(SCENARIOS["02"])
    assert attribution_rows("L-1", facts_02, won=True) == rows_01


# -- scenario 04 -----------------------------------------------------------------------------


def test_scenario_04_ends_lost_so_no_rows() -> None:
    scenario = SCENARIOS["04"]
    facts = facts_of(scenario)
    assert not is_won(scenario, facts)
    assert attribution_rows(scenario.lead_id, facts, won=False) == []


def won_variant_of_04() -> tuple[Scenario, list[Fact]]:
    """Scenario 04 with its last event, the deal.lost of cycle 2, replaced by a deal.won."""
    scenario = SCENARIOS["04"]
    published = json.loads(json.dumps(scenario.published))
    for message in published:
        value = message["value"]
        if value["event_type"] == "deal.lost":
            value.update(event_type="deal.won", amount="5000", currency="EUR")
            value.pop("reason")
    variant = Scenario(scenario.name + "_won", scenario.lead_id, published, scenario.config, {})
    return variant, facts_of(variant)


def test_scenario_04_won_variant_by_hand() -> None:
    # Two cycles (recycled for 'nurture', then requalified and won). The only campaign touch is
    # cycle 1's lead.mql C-ebook (lead.created has no campaign, the second lead.mql none): it is
    # the first, creation (fallback: first touch), MQL and last touch, so C-ebook gets 1 in
    # every model.
    variant, facts = won_variant_of_04()
    assert is_won(variant, facts)
    rows = attribution_rows(variant.lead_id, facts, won=True)
    assert credits(rows) == {model: {"C-ebook": Decimal(1)} for model in MODELS}
    assert {r["touch_count"] for r in rows} == {1}
    assert_sums_to_one(rows)


def test_scenario_04_won_variant_with_touches_in_both_cycles() -> None:
    # Add a touch C-nurture in cycle 1 (after the rejection) and C-retarget in cycle 2 (before
    # the second MQL). Touches: C-ebook (mql, 01-06), C-nurture (01-20), C-retarget (02-09).
    # first: C-ebook. last: C-retarget. linear: 1/3 each (rounded 0.333334 / 0.333333 x2).
    # W: first 30% + creation 30% (no lead.created touch: the first touch) + MQL 30% (the first
    # lead.mql carries C-ebook itself) = 90% C-ebook; the 10% rest over the two others: 5% each.
    variant, facts = won_variant_of_04()
    day = 24 * HOUR
    jan_1 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
    facts += [
        Fact(jan_1 + 19 * day, TYPE_RANK["lead.touch"], "x-1", campaign_id="C-nurture"),
        Fact(jan_1 + 39 * day, TYPE_RANK["lead.touch"], "x-2", campaign_id="C-retarget"),
    ]
    rows = attribution_rows(variant.lead_id, facts, won=True)
    assert credits(rows) == {
        "first_touch": {"C-ebook": Decimal(1), "C-nurture": Decimal(0), "C-retarget": Decimal(0)},
        "last_touch": {"C-ebook": Decimal(0), "C-nurture": Decimal(0), "C-retarget": Decimal(1)},
        "linear": {
            "C-ebook": Decimal("0.333334"),
            "C-nurture": Decimal("0.333333"),
            "C-retarget": Decimal("0.333333"),
        },
        "w_shaped": {
            "C-ebook": Decimal("0.9"),
            "C-nurture": Decimal("0.05"),
            "C-retarget": Decimal("0.05"),
        },
    }
    assert_sums_to_one(rows)


# -- the definition on small cases -------------------------------------------------------------


def test_w_shaped_with_distinct_positions_and_a_repeated_campaign() -> None:
    facts = [
        fact(1, "lead.touch", "a", "C-a"),  # first touch
        fact(2, "lead.created", "b", "C-b"),  # lead creation
        fact(3, "lead.touch", "c", "C-c"),  # rest
        fact(4, "lead.touch", "d", "C-a"),  # MQL touch (last at or before the first mql)
        fact(5, "lead.mql", "e"),
        fact(6, "lead.touch", "f", "C-c"),  # rest
        fact(7, "deal.won", "g"),
        fact(8, "lead.touch", "h", "C-late"),  # after the win: not a touch
    ]
    rows = attribution_rows("L", facts, won=True)
    got = credits(rows)
    assert got["w_shaped"] == {"C-a": Decimal("0.6"), "C-b": Decimal("0.3"), "C-c": Decimal("0.1")}
    assert got["linear"] == {"C-a": Decimal("0.4"), "C-b": Decimal("0.2"), "C-c": Decimal("0.4")}
    assert got["last_touch"]["C-c"] == 1 and got["first_touch"]["C-a"] == 1
    assert {r["campaign_id"]: r["touch_count"] for r in rows if r["model"] == "linear"} == {
        "C-a": 2,
        "C-b": 1,
        "C-c": 2,
    }
    assert_sums_to_one(rows)


def test_no_lead_mql_puts_the_mql_share_on_the_last_touch() -> None:
    facts = [fact(1, "lead.created", "a", "C-a"), fact(2, "lead.touch", "b", "C-b")]
    facts += [fact(3, "lead.touch", "c", "C-c"), fact(4, "deal.won", "d")]
    got = credits(attribution_rows("L", facts, won=True))["w_shaped"]
    assert got == {"C-a": Decimal("0.6"), "C-b": Decimal("0.1"), "C-c": Decimal("0.3")}


def test_not_won_or_no_touch_gives_no_rows() -> None:
    facts = [fact(1, "lead.created", "a", "C-a"), fact(2, "deal.won", "b")]
    assert attribution_rows("L", facts, won=False) == []
    assert (
        attribution_rows("L", [fact(1, "lead.created", "a"), fact(2, "deal.won", "b")], True) == []
    )


def test_every_won_golden_lead_sums_to_one() -> None:
    for scenario in SCENARIOS.values():
        facts = facts_of(scenario)
        rows = attribution_rows(scenario.lead_id, facts, is_won(scenario, facts))
        if rows:
            assert_sums_to_one(rows)


touch_kinds = st.sampled_from(["lead.created", "lead.touch", "lead.mql", "lead.scored"])
campaigns = st.sampled_from([None, "C-1", "C-2", "C-3", "C-4"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 50), touch_kinds, campaigns), min_size=1, max_size=12),
    st.integers(0, 60),
    st.randoms(use_true_random=False),
)
def test_credits_sum_to_one_whatever_the_order_and_duplicates(
    events: list[tuple[int, str, str | None]], won_at: int, rng: random.Random
) -> None:
    facts = [fact(h, kind, f"e{i}", camp) for i, (h, kind, camp) in enumerate(events)]
    facts.append(fact(won_at, "deal.won", "won"))
    rows = attribution_rows("L", facts, won=True)
    if rows:
        assert_sums_to_one(rows)
    shuffled = facts + rng.sample(facts, k=min(3, len(facts)))  # late and repeated events
    rng.shuffle(shuffled)
    assert attribution_rows("L", shuffled, won=True) == rows


@pytest.mark.parametrize("n", [1, 3, 6, 7, 11])
def test_linear_rounding_is_exact(n: int) -> None:
    facts = [fact(i, "lead.touch", f"t{i}", f"C-{i}") for i in range(n)]
    rows = attribution_rows("L", [*facts, fact(n, "deal.won", "w")], won=True)
    assert_sums_to_one(rows)
