"""SLA policies in the fold: the policy, business-time deadline and status of each cycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadflow.agents.facts import Fact, to_micros
from leadflow.agents.fold import FoldConfig, fold
from leadflow.agents.sla.policies import parse_policies
from leadflow.schemas.vocabulary import TYPE_RANK

POLICIES = parse_policies(
    """
calendars:
  paris:
    timezone: Europe/Paris
    hours: {mon: ["09:00-18:00"], tue: ["09:00-18:00"], wed: ["09:00-18:00"],
            thu: ["09:00-18:00"], fri: ["09:00-17:00"]}
    holidays: ["2026-12-25"]
policies:
  - name: hot
    when: {source: [referral], min_score: 80}
    target_hours: 1
    calendar: paris
  - name: paid
    when: {source: [paid_search]}
    target_hours: 4
    calendar: paris
    effective_until: "2026-12-01T00:00:00Z"
  - name: default
    when: {source: [referral, paid_search]}
    target_hours: 24
"""
)
CONFIG = FoldConfig(86_400.0, frozenset({"nurture"}), POLICIES)
NOW = datetime(2027, 1, 10, tzinfo=UTC)
PARIS = timedelta(hours=1)  # CET, winter


def fact(at: datetime, event_type: str, n: int, **fields: object) -> Fact:
    return Fact(ts=to_micros(at), rank=TYPE_RANK[event_type], event_id=f"e{n}", **fields)  # type: ignore[arg-type]


def lead(source: str, mql_at: datetime, score: int | None, *later: Fact) -> list[Fact]:
    created = fact(mql_at - timedelta(days=1), "lead.created", 0, source=source)
    return [created, fact(mql_at, "lead.mql", 1, score=score), *later]


def test_a_friday_evening_mql_waits_for_monday_morning() -> None:
    friday_1730 = datetime(2026, 12, 4, 17, 30, tzinfo=UTC) - PARIS
    snap = fold("L", lead("referral", friday_1730, 90), CONFIG, NOW)
    (row,) = snap.sla
    assert row["policy"] == "hot"
    assert row["deadline"] == datetime(2026, 12, 7, 10, 0, tzinfo=UTC) - PARIS  # Monday 10:00
    assert row["status"] == "breached"  # no answer, deadline passed


def test_a_response_on_monday_at_0930_is_met_with_half_an_hour_of_business_time() -> None:
    friday_1730 = datetime(2026, 12, 4, 17, 30, tzinfo=UTC) - PARIS
    monday_0930 = datetime(2026, 12, 7, 9, 30, tzinfo=UTC) - PARIS
    answer = fact(monday_0930, "lead.contacted", 2, owner_id="ana")
    (row,) = fold("L", lead("referral", friday_1730, 90, answer), CONFIG, NOW).sla
    assert row["status"] == "met"
    assert row["response_business_seconds"] == 1800.0
    assert row["response_seconds"] == (monday_0930 - friday_1730).total_seconds()


def test_the_score_at_mql_picks_the_segment_and_a_later_score_does_not() -> None:
    mql_at = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    rescored = fact(mql_at + timedelta(minutes=5), "lead.scored", 2, score=95)
    (row,) = fold("L", lead("referral", mql_at, 50, rescored), CONFIG, NOW).sla
    assert row["policy"] == "default"
    assert row["deadline"] == mql_at + timedelta(hours=24)  # no calendar: wall clock
    assert fold("L", lead("referral", mql_at, 50, rescored), CONFIG, NOW).lifecycle["score"] == 95


def test_a_policy_that_expired_before_the_mql_does_not_apply() -> None:
    before = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    after = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert fold("A", lead("paid_search", before, None), CONFIG, NOW).sla[0]["policy"] == "paid"
    assert fold("B", lead("paid_search", after, None), CONFIG, NOW).sla[0]["policy"] == "default"


def test_no_matching_policy_means_no_sla_row_and_no_sla_status() -> None:
    snap = fold("L", lead("email", datetime(2026, 12, 2, tzinfo=UTC), 99), CONFIG, NOW)
    assert snap.sla == []
    assert snap.lifecycle["sla_status"] is None
    assert [t["stage"] for t in snap.transitions] == ["lead", "mql"]


def test_a_late_lead_created_moves_the_cycle_to_another_policy() -> None:
    mql_at = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    orphan = [fact(mql_at, "lead.mql", 1, score=90)]
    assert fold("L", orphan, CONFIG, NOW).sla == []  # no source yet: nothing matches
    late = fact(mql_at - timedelta(days=1), "lead.created", 0, source="referral")
    assert fold("L", [*orphan, late], CONFIG, NOW).sla[0]["policy"] == "hot"


def test_an_mql_on_a_holiday_starts_the_clock_the_next_open_morning() -> None:
    christmas = datetime(2026, 12, 25, 11, 0, tzinfo=UTC) - PARIS
    (row,) = fold("L", lead("referral", christmas, 85), CONFIG, NOW).sla
    assert row["deadline"] == datetime(2026, 12, 28, 10, 0, tzinfo=UTC) - PARIS


def test_without_policies_the_rows_are_the_single_clock_s() -> None:
    mql_at = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    answer = fact(mql_at + timedelta(hours=2), "lead.accepted", 2)
    plain = FoldConfig(86_400.0, frozenset())
    (row,) = fold("L", lead("email", mql_at, None, answer), plain, NOW).sla
    assert row["policy"] is None
    assert row["deadline"] == mql_at + timedelta(hours=24)
    assert row["response_business_seconds"] == row["response_seconds"] == 7200.0
    assert row["status"] == "met"
