"""lead_events (contract section 7) and the dead-letter key (section 4), on both stores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, text

from leadflow.agents.batch import fold_batch
from leadflow.agents.facts import Fact
from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.errors import StoreError
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks import SqlSink, make_engine, upgrade
from leadflow.sinks.migrate import alembic_config
from leadflow.sinks.store import payload_hash
from tests.support.golden import Scenario, config_of, facts_of, load_scenarios
from tests.support.queries import table_rows

SCENARIOS = load_scenarios()
T1 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)
PII = ("ana@example.com", "Acme")  # scenario 01's lead.created


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def batches_of(scenario: Scenario, size: int) -> list[list[LeadSnapshot]]:
    """The scenario's lead folded ``size`` events at a time, as a worker would."""
    state: dict[str, bytes] = {}
    facts = facts_of(scenario)
    out = []
    for start in range(0, len(facts), size):
        part = [(scenario.lead_id, fact) for fact in facts[start : start + size]]
        result = fold_batch(part, state.get, config_of(scenario), scenario.now)
        for update in result.updates:
            state[update.lead_id] = update.state
        out.append([u.snapshot for u in result.updates])
    return out


def distinct(facts: Sequence[Fact]) -> dict[str, Fact]:
    seen: dict[str, Fact] = {}
    for fact in facts:
        seen.setdefault(fact.event_id, fact)
    return seen


def write_all(engine: Engine, batches: list[list[LeadSnapshot]], now: datetime) -> int:
    sink = SqlSink(engine)
    return sum(sink.write_batch(batch, [], now) for batch in batches)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_every_distinct_event_has_one_row(engine: Engine, scenario: Scenario) -> None:
    write_all(engine, batches_of(scenario, 2), T1)
    rows = {row["event_id"]: row for row in table_rows(engine, "lead_events")}
    facts = distinct(facts_of(scenario))
    assert rows.keys() == facts.keys()
    for event_id, fact in facts.items():
        row = rows[event_id]
        assert row["lead_id"] == scenario.lead_id
        assert row["event_type"] == fact.event_type
        assert row["occurred_at"] == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            microseconds=fact.ts
        )
        assert row["source_system"] == fact.source_system
        assert row["campaign_id"] == fact.campaign_id
        assert row["owner_id"] == fact.owner_id
        assert row["reason"] == fact.reason
        amount = row["amount"]
        assert (None if amount is None else Decimal(str(amount))) == (
            None if fact.amount is None else Decimal(fact.amount)
        )
        assert row["received_at"] == T1


def test_no_personal_data_and_channels_kept(engine: Engine) -> None:
    for scenario in SCENARIOS:
        write_all(engine, batches_of(scenario, 3), T1)
    rows = table_rows(engine, "lead_events")
    assert not any(value in repr(rows) for value in PII)
    assert not {"email", "company", "country"} & rows[0].keys()
    channels = {row["channel"] for row in rows} - {None}
    published = {
        m["value"].get("channel") for s in SCENARIOS for m in s.published if "value" in m
    } - {None}
    assert channels == published


def test_replays_add_nothing(engine: Engine) -> None:
    scenario = SCENARIOS[1]
    batches = batches_of(scenario, 2)
    write_all(engine, batches, T1)
    before = table_rows(engine, "lead_events")
    assert write_all(engine, batches, T2) == 0
    assert write_all(engine, list(reversed(batches)), T2) == 0
    assert table_rows(engine, "lead_events") == before


def test_events_commit_with_their_lead_rows_or_not_at_all(engine: Engine) -> None:
    (snapshot,) = batches_of(SCENARIOS[0], 100)[0]
    broken = LeadSnapshot(
        snapshot.lead_id,
        snapshot.version,
        {**snapshot.lifecycle, "cycle_no": None},  # NOT NULL: the write fails
        snapshot.transitions,
        snapshot.sla,
        events=snapshot.events,
    )
    with pytest.raises(StoreError):
        SqlSink(engine).write_batch([broken], [], T1)
    assert table_rows(engine, "lead_events") == []
    assert table_rows(engine, "lead_lifecycle") == []
    SqlSink(engine).write_batch([snapshot], [], T1)
    assert len(table_rows(engine, "lead_events")) == len(snapshot.events) > 0


def test_per_lead_and_time_range_reads_use_an_index(engine: Engine) -> None:
    queries = (
        "SELECT * FROM lead_events WHERE lead_id = 'L-1' ORDER BY occurred_at",
        "SELECT * FROM lead_events WHERE occurred_at >= '2026-01-01' "
        "AND occurred_at < '2026-02-01'",
    )
    with engine.connect() as conn:
        for query in queries:
            if engine.dialect.name == "sqlite":
                rows = conn.execute(text("EXPLAIN QUERY PLAN " + query))
                plan = " ".join(str(r[-1]) for r in rows)
            else:
                conn.execute(text("SET enable_seqscan = off"))
                plan = " ".join(r[0] for r in conn.execute(text("EXPLAIN " + query)))
            assert "ix_lead_events" in plan, plan


# -- dead letters (section 4) ------------------------------------------------------------------


def dead_letter(offset: int, payload: str = "{oops", at: datetime = T1) -> DeadLetter:
    return DeadLetter(
        "marketing-leads", 3, offset, "invalid_json", "the message is not JSON", payload, at
    )


def letters(engine: Engine) -> list[tuple[Any, ...]]:
    rows = table_rows(engine, "dead_letters")
    return sorted((r["offset"], r["payload"], r["received_at"]) for r in rows)


def test_the_same_message_read_again_adds_no_dead_letter(engine: Engine) -> None:
    sink = SqlSink(engine)
    assert sink.write_batch([], [dead_letter(7), dead_letter(8)], T1) == 2
    assert sink.write_batch([], [dead_letter(7, at=T2), dead_letter(8, at=T2)], T2) == 0
    assert letters(engine) == [(7, "{oops", T1), (8, "{oops", T1)]


def test_another_message_at_a_reused_offset_adds_one(engine: Engine) -> None:
    sink = SqlSink(engine)
    sink.write_batch([], [dead_letter(7)], T1)
    assert sink.write_batch([], [dead_letter(7, "{other", T2), dead_letter(7, at=T2)], T2) == 1
    assert letters(engine) == [(7, "{oops", T1), (7, "{other", T2)]


def test_migrating_keys_existing_dead_letters_by_their_payload(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "0006")
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    'INSERT INTO dead_letters (topic, partition, "offset", reason, error, '
                    "payload, received_at) VALUES ('t', 0, 5, 'invalid_json', 'e', :p, :at)"
                ),
                {"p": "{café", "at": T1},
            )
        upgrade(database_url)
        (row,) = table_rows(engine, "dead_letters")
        assert row["payload_hash"] == payload_hash("{café")
        again = DeadLetter("t", 0, 5, "invalid_json", "e", "{café", T2)
        SqlSink(engine).write_batch([], [again], T2)
        assert len(table_rows(engine, "dead_letters")) == 1
    finally:
        engine.dispose()
