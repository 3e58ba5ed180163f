"""Every golden scenario through the pure fold, field by field."""

from __future__ import annotations

import pytest

from leadflow.agents.fold import LeadFold, fold
from tests.support.golden import Scenario, assert_rows_match, config_of, facts_of, load_scenarios

SCENARIOS = load_scenarios()


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
