"""PostgreSQL: the sink's COPY path stores exactly the rows its row-by-row statements store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from leadflow.agents.batch import fold_batch
from leadflow.agents.facts import Fact
from leadflow.pipeline.publish.simulate import simulate, valid_events
from leadflow.schemas.classify import DeadLetter, classify
from leadflow.schemas.errors import PermanentStoreError
from leadflow.schemas.events import BaseEvent
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks import SqlSink, make_engine, rows, upgrade
from leadflow.sinks.models import LIFECYCLE, TABLES
from tests.support.demo_store import CONFIG, DEMO_NOW
from tests.support.queries import funnel_groupby, funnel_rows, table_rows

BATCH = 200


def _facts(leads: int) -> dict[str, list[Fact]]:
    facts: dict[str, list[Fact]] = defaultdict(list)
    for message in valid_events(simulate(leads, 3, DEMO_NOW)):
        event = classify(message.value, message.topic_kind, DEMO_NOW)
        if isinstance(event, BaseEvent):
            facts[event.lead_id].append(Fact.from_event(event))
    return facts


def _batches(leads: int) -> list[tuple[list[LeadSnapshot], list[DeadLetter]]]:
    """Half histories, then the rest, as a worker folds them; then the half ones again (older)
    and the full ones again (a replay); in batches, each with a dead letter (some twice)."""
    facts = _facts(leads)
    first = [(lead, fact) for lead, f in facts.items() for fact in f[: len(f) // 2 + 1]]
    rest = [(lead, fact) for lead, f in facts.items() for fact in f[len(f) // 2 + 1 :]]
    half = fold_batch(first, {}.get, CONFIG, DEMO_NOW)
    state = {update.lead_id: update.state for update in half.updates}
    full = fold_batch(rest, state.get, CONFIG, DEMO_NOW)
    batches = []
    for n, result in enumerate((half, full, half, full)):
        snaps = [update.snapshot for update in result.updates]
        for start in range(0, len(snaps), BATCH):
            offset = start + n % 2
            letter = DeadLetter("t", 0, offset, "invalid_json", "bad", f"{{{offset}", DEMO_NOW)
            batches.append((snaps[start : start + BATCH], [letter]))
    return batches


def _write(url: str, copy_min_rows: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    upgrade(url)
    monkeypatch.setattr(rows, "COPY_MIN_ROWS", copy_min_rows)
    engine = make_engine(url)
    try:
        sink = SqlSink(engine)
        written = [
            sink.write_batch(snaps, letters, DEMO_NOW + timedelta(minutes=n))
            for n, (snaps, letters) in enumerate(_batches(400))
        ]
        assert funnel_rows(engine) == funnel_groupby(engine)
        return {"written": written, **{name: table_rows(engine, name) for name in TABLES}}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_copy_stores_the_rows_of_row_by_row_statements(
    pg_schema_url: str, other_pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_copy = _write(pg_schema_url, 1, monkeypatch)
    by_rows = _write(other_pg_schema_url, 10**9, monkeypatch)
    assert by_copy["lead_lifecycle"] and by_copy["lead_events"] and by_copy["handoff_sla"]
    assert sum(by_copy["written"][len(by_copy["written"]) // 2 :]) == 0  # older, then replayed
    for name, expected in by_rows.items():
        assert by_copy[name] == expected, name


@pytest.mark.postgres
def test_copy_never_replaces_a_newer_stored_version(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement's own guard, for a writer that read the old version before another
    writer committed a newer one."""
    upgrade(pg_schema_url)
    monkeypatch.setattr(rows, "COPY_MIN_ROWS", 1)
    (newer,) = [u.snapshot for u in fold_batch(list(_pairs()), {}.get, CONFIG, DEMO_NOW).updates]
    older = {**newer.lifecycle, "version": newer.version - 1, "stage": None}
    engine = make_engine(pg_schema_url)
    try:
        with engine.begin() as conn:
            for row in (newer.lifecycle, older):
                rows.insert_rows(
                    conn,
                    LIFECYCLE,
                    [{**row, "updated_at": DEMO_NOW}],
                    upsert_key=("lead_id",),
                    only_if_newer="version",
                )
        (stored,) = table_rows(engine, "lead_lifecycle")
        assert stored["version"] == newer.version and stored["stage"] == newer.lifecycle["stage"]
    finally:
        engine.dispose()


def _pairs() -> Iterator[tuple[str, Fact]]:
    lead, facts = next(iter(_facts(3).items()))
    for fact in facts:
        yield lead, fact


@pytest.mark.postgres
def test_a_failed_copy_is_a_store_error_and_writes_nothing(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row the table refuses fails the batch as the row-by-row statement does: permanently,
    in one transaction (nothing of the batch is kept), and the next batch writes."""
    upgrade(pg_schema_url)
    monkeypatch.setattr(rows, "COPY_MIN_ROWS", 1)
    snaps, _ = _batches(30)[0]
    broken = replace(snaps[0], lifecycle={**snaps[0].lifecycle, "cycle_no": None})  # NOT NULL
    engine = make_engine(pg_schema_url)
    try:
        sink = SqlSink(engine)
        with pytest.raises(PermanentStoreError, match="cycle_no"):
            sink.write_batch([*snaps[1:], broken], [], DEMO_NOW)
        assert table_rows(engine, "lead_events") == []
        assert table_rows(engine, "lead_lifecycle") == []
        assert sink.write_batch(snaps, [], DEMO_NOW) > 0
        assert len(table_rows(engine, "lead_lifecycle")) == len(snaps)
    finally:
        engine.dispose()
