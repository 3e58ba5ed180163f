"""A store filled with the golden scenarios, and an independent reading of it."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from leadflow.agents.fold import fold
from leadflow.pipeline.reporting.model import ReportQuery
from leadflow.schemas.classify import DeadLetter
from leadflow.sinks import SqlSink, make_engine
from tests.support.golden import Scenario, config_of, facts_of, load_scenarios
from tests.support.queries import table_rows


def fill_store(url: str, *, attribution: bool = True) -> None:
    """The golden scenarios' rows (and their attribution) written into a migrated store."""
    engine = make_engine(url)
    try:
        snapshots = [fold(s.lead_id, facts_of(s), config_of(s), s.now) for s in SCENARIOS]
        SqlSink(engine).write_batch(snapshots, DEAD_LETTERS, NOW)
        if not attribution:  # a store from before the attribution table
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE attribution"))
    finally:
        engine.dispose()


def expected_stages(engine: Engine, query: ReportQuery) -> dict[str, int]:
    """Distinct leads per stage entered, filtered in Python from the raw rows."""
    leads = {row["lead_id"]: row for row in table_rows(engine, "lead_lifecycle")}
    start = datetime.combine(query.since, datetime.min.time(), UTC) if query.since else None
    end = (
        datetime.combine(query.until + timedelta(days=1), datetime.min.time(), UTC)
        if query.until
        else None
    )
    entered: dict[str, set[str]] = defaultdict(set)
    for row in table_rows(engine, "lead_stage_transitions"):
        lead = leads.get(row["lead_id"], {})
        moment = (
            row["entered_at"].replace(tzinfo=UTC)
            if row["entered_at"].tzinfo is None
            else row["entered_at"]
        )
        if query.source and (lead.get("source") or "unknown") != query.source:
            continue
        if query.campaign and (lead.get("campaign_id") or "unknown") != query.campaign:
            continue
        if (start and moment < start) or (end and moment >= end):
            continue
        entered[row["stage"]].add(row["lead_id"])
    return {stage: len(ids) for stage, ids in entered.items()}


NOW = datetime(2026, 6, 1, tzinfo=UTC)


def unique_leads() -> list[Scenario]:
    kept: dict[str, Scenario] = {}
    for scenario in load_scenarios():
        kept.setdefault(scenario.lead_id, scenario)
    return list(kept.values())


SCENARIOS = unique_leads()


DEAD_LETTERS = [
    DeadLetter("marketing-leads", 0, offset, reason, "The message was rejected.", "{", NOW)
    for offset, reason in enumerate(["invalid_json", "wrong_topic"])
]
