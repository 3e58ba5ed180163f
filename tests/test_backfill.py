"""A store written before lead_events existed keeps its history: a worker whose changelog state
holds the events of leads that lead_events lacks writes them there at recovery, so that
``leadflow rebuild`` runs on that store and gives what a fresh pipeline gives."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, Table

from leadflow.agents.metrics import Metrics
from leadflow.agents.processor import LeadProcessor
from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks import make_engine, upgrade
from leadflow.sinks.rebuild import RebuildRefused
from tests.support.processors import (
    ALL,
    CONFIG,
    NAMES,
    PARTITIONS,
    _sent,
    dump,
    feed,
    messages,
    run,
    worker,
)
from tests.support.rebuilds import rebuild_when_free

WRITTEN = datetime(2026, 1, 1, tzinfo=UTC)
PER_LEAD = ("lead_lifecycle", "lead_stage_transitions", "handoff_sla", "lead_events")


class Snapshots:
    """A sink that keeps the latest snapshot of each lead (a store of schema 0006 is filled
    from them by hand)."""

    def __init__(self) -> None:
        self.latest: dict[str, LeadSnapshot] = {}

    def write_batch(
        self, snapshots: Sequence[LeadSnapshot], dead_letters: Sequence[DeadLetter], now: datetime
    ) -> int:
        for snap in snapshots:
            kept = self.latest.get(snap.lead_id)
            if kept is None or snap.version >= kept.version:
                self.latest[snap.lead_id] = snap
        return len(snapshots)

    def close(self) -> None:
        pass


def insert_as_of_0006(engine: Engine, snapshots: Sequence[LeadSnapshot]) -> None:
    """The snapshots' per-lead rows, in the columns the 0006 schema has."""
    meta = MetaData()
    tables = {name: Table(name, meta, autoload_with=engine) for name in PER_LEAD[:3]}
    rows: dict[str, list[dict[str, Any]]] = {
        "lead_lifecycle": [{**s.lifecycle, "updated_at": WRITTEN} for s in snapshots],
        "lead_stage_transitions": [t for s in snapshots for t in s.transitions],
        "handoff_sla": [r for s in snapshots for r in s.sla],
    }
    with engine.begin() as conn:
        for name, table in tables.items():
            columns = set(table.c.keys())
            values = [{k: v for k, v in row.items() if k in columns} for row in rows[name]]
            if values:
                conn.execute(table.insert(), values)


@pytest.fixture
def old_and_fresh(database_url: str, other_url: str) -> Iterator[tuple[str, Engine, Engine]]:
    """A store at 0006 and a fresh reference store at the newest schema."""
    upgrade(database_url, "0006")
    upgrade(other_url)
    engines = [make_engine(database_url), make_engine(other_url)]
    try:
        yield database_url, engines[0], engines[1]
    finally:
        for engine in engines:
            engine.dispose()


def test_an_upgraded_store_gets_its_events_from_the_kafka_state(
    old_and_fresh: tuple[str, Engine, Engine], caplog: pytest.LogCaptureFixture
) -> None:
    url, engine, reference = old_and_fresh
    table: dict[str, bytes] = {}
    old_sink = Snapshots()
    before = LeadProcessor(
        names=NAMES,
        partitions=PARTITIONS,
        partition_counts={NAMES.marketing: PARTITIONS, NAMES.sales: PARTITIONS},
        config=CONFIG,
        table=table,
        sink=old_sink,
        send=_sent,
        metrics=Metrics.create(),
    )
    feed(before, messages())
    before.close()
    insert_as_of_0006(engine, list(old_sink.latest.values()))
    upgrade(url)
    with pytest.raises(RebuildRefused, match="no events in lead_events"):
        rebuild_when_free(url, CONFIG)

    after = worker(engine, table)  # the changelog state of the worker that wrote the rows
    with caplog.at_level(logging.WARNING, logger="leadflow.agents"):
        assert run(lambda: after.recover(ALL)) == 0  # nothing was behind: a backfill only
    backfilled = after.metrics.registry.get_sample_value("leadflow_backfilled_leads_total")
    assert backfilled == len(table)
    assert any("to lead_events from the Kafka state" in r.getMessage() for r in caplog.records)
    assert run(lambda: after.recover(ALL)) == 0
    assert after.metrics.registry.get_sample_value("leadflow_backfilled_leads_total") == len(table)
    after.close()

    fresh = worker(reference, {})
    feed(fresh, messages())
    fresh.close()
    assert dump(engine)["lead_events"] == dump(reference)["lead_events"]
    rebuild_when_free(url, CONFIG)
    mine, theirs = dump(engine), dump(reference)
    for name in PER_LEAD:
        assert mine[name] == theirs[name], f"{name} differs from a fresh pipeline's"
