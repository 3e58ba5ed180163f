"""Every golden scenario through the pure fold, field by field."""

from __future__ import annotations

import pytest

from agents.facts import Fact
from agents.fold import FoldConfig, LeadFold, fold
from schemas.classify import classify
from schemas.events import BaseEvent
from tests.golden import Scenario, assert_rows_match, load_scenarios

SCENARIOS = load_scenarios()


def facts_of(scenario: Scenario) -> list[Fact]:
    facts = []
    for message in scenario.published:
        import json

        event = classify(json.dumps(message["value"]).encode(), message["topic"], scenario.now)
        assert isinstance(event, BaseEvent), event
        facts.append(Fact.from_event(event))
    return facts


def config_of(scenario: Scenario) -> FoldConfig:
    return FoldConfig(
        sla_seconds=scenario.config["sla_hours"] * 3600.0,
        recycle_reasons=frozenset(scenario.config["recycle_reasons"]),
    )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_through_the_fold(scenario: Scenario) -> None:
    snapshot = fold(scenario.lead_id, facts_of(scenario), config_of(scenario), scenario.now)
    expected = scenario.expected
    assert_rows_match(snapshot.lifecycle, expected["lead_lifecycle"], "lead_lifecycle")
    assert len(snapshot.transitions) == len(expected["lead_stage_transitions"])
    for i, (got, want) in enumerate(
        zip(snapshot.transitions, expected["lead_stage_transitions"], strict=True)
    ):
        assert_rows_match(got, want, f"transition {i}")
    assert len(snapshot.sla) == len(expected["handoff_sla"])
    for i, (got, want) in enumerate(zip(snapshot.sla, expected["handoff_sla"], strict=True)):
        assert_rows_match(got, want, f"handoff_sla {i}")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_incremental_in_publication_order_equals_refold(scenario: Scenario) -> None:
    config = config_of(scenario)
    running = LeadFold(scenario.lead_id, config)
    for fact in facts_of(scenario):
        running.add(fact)
    assert running.snapshot(scenario.now) == fold(
        scenario.lead_id, facts_of(scenario), config, scenario.now
    )
