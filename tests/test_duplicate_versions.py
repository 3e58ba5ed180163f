"""A conflicting duplicate within one lead never lowers the lead's version (contract sections 2
and 5): the copy that sorts first wins in every arrival order, and the version grows with every
change of the lead, so the store and the lifecycle topic take the winner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from leadflow.agents.batch import fold_batch, refresh, state_version
from leadflow.agents.facts import Fact, canonical, copy_digest, to_micros
from leadflow.agents.fold import fold
from leadflow.agents.partitioning import partition_of
from leadflow.agents.processor import Incoming
from leadflow.schemas.vocabulary import TYPE_RANK
from leadflow.sinks import make_engine
from tests.support.fold_cases import BASE_US, CONFIG, facts
from tests.support.processors import ALL, NAMES, PARTITIONS, REKEYED, feed, run, worker
from tests.support.processors import CONFIG as LIVE
from tests.support.queries import table_rows
from tests.support.rebuilds import rebuild_when_free

AT = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)  # long past: an unanswered SLA is breached now
LEAD = "L"


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def message(offset: int, event_id: str, seconds: int, event_type: str, **fields: str) -> Incoming:
    document = {
        "event_id": event_id,
        "lead_id": LEAD,
        "event_type": event_type,
        "occurred_at": AT.replace(second=seconds).isoformat(),
        **fields,
    }
    topic = NAMES.marketing if event_type in ("lead.created", "lead.mql") else NAMES.sales
    return Incoming(topic, partition_of(LEAD, PARTITIONS), offset, json.dumps(document).encode())


def fact(seconds: int, rank: int, event_id: str, **fields: str) -> Fact:
    return Fact(ts=to_micros(AT.replace(second=seconds)), rank=rank, event_id=event_id, **fields)


CREATED = message(1, "c", 0, "lead.created", source="web")
MQL = message(2, "m", 1, "lead.mql")
# Two copies of one event_id: the assignment answers no SLA, the acceptance does (in time).
ASSIGNED = message(3, "x", 2, "lead.assigned", owner_id="o")
ACCEPTED = message(4, "x", 2, "lead.accepted", owner_id="o")
WINNER = fact(2, TYPE_RANK["lead.accepted"], "x", owner_id="o")
LOSER = fact(2, TYPE_RANK["lead.assigned"], "x", owner_id="o")
KEPT = [
    fact(0, TYPE_RANK["lead.created"], "c", source="web"),
    fact(1, TYPE_RANK["lead.mql"], "m"),
    WINNER,
]


def lifecycle(engine: Engine) -> dict[str, object]:
    (row,) = table_rows(engine, "lead_lifecycle")
    return row


def test_the_copies_are_the_ones_meant() -> None:
    assert canonical(LEAD, WINNER) < canonical(LEAD, LOSER)
    assert WINNER.event_type == "lead.accepted" and LOSER.event_type == "lead.assigned"


@pytest.mark.parametrize("order", ["loser first", "winner first"])
def test_a_winning_copy_that_meets_the_sla_reaches_the_store_and_the_topic(
    engine: Engine, order: str
) -> None:
    lead = worker(engine, {})
    feed(lead, [CREATED, MQL])
    copies = [ASSIGNED, ACCEPTED] if order == "loser first" else [ACCEPTED, ASSIGNED]
    versions = []
    for copy in copies:
        feed(lead, [copy])
        versions.append(lifecycle(engine)["version"])
    lead.close()
    want = fold(LEAD, [*KEPT, LOSER], LIVE, datetime.now(UTC))
    row = lifecycle(engine)
    assert row["stage"] == "sal" and row["stage"] == want.lifecycle["stage"]
    statuses = [r["status"] for r in table_rows(engine, "handoff_sla")]
    assert statuses == [r["status"] for r in want.sla] == ["met"]
    assert versions[0] < versions[1] == want.version  # one more copy seen, in either order
    snapshots = [json.loads(v) for t, v in REKEYED[lead].records if t == NAMES.lifecycle]
    highest = max(snapshots, key=lambda s: s["version"])
    assert highest["stage"] == "sal"
    (beaten,) = table_rows(engine, "lead_beaten_copies")
    assert (beaten["event_id"], beaten["copy_sha256"]) == ("x", copy_digest(LEAD, LOSER))


def test_rebuild_and_recovery_count_the_copy_that_lost(engine: Engine, migrated_url: str) -> None:
    lead = worker(engine, {})
    feed(lead, [CREATED, MQL, ASSIGNED, ACCEPTED])
    lead.close()
    version = lifecycle(engine)["version"]
    moved = rebuild_when_free(migrated_url, LIVE)
    assert moved.rewritten == 0, "the rebuild reads the copy that lost as the live fold did"
    table: dict[str, bytes] = {}  # a lost changelog: the state comes back from the store
    again = worker(engine, table)
    run(lambda: again.recover(ALL))
    feed(again, [ASSIGNED])  # a replay of the losing copy changes nothing
    again.close()
    assert state_version(table[LEAD]) == version
    assert lifecycle(engine)["version"] == version


HOUR = timedelta(hours=1)


@st.composite
def arrivals(draw: st.DrawFn) -> list[tuple[str, Fact | None, int]]:
    """Steps in any order: a copy of one of a few event_ids (``copy``), its loss to another
    lead's (``lose``: a copy the lead sent, or not yet), or the clock moving on (``tick``)."""
    steps: list[tuple[str, Fact | None, int]] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["copy", "copy", "lose", "tick"]))
        copy = draw(facts(draw(st.integers(0, 2)))) if kind != "tick" else None
        steps.append((kind, copy, draw(st.integers(1, 48))))
    return steps


@settings(max_examples=300, deadline=None)
@given(steps=arrivals())
def test_a_leads_version_never_decreases(steps: list[tuple[str, Fact | None, int]]) -> None:
    table: dict[str, bytes] = {}
    now = datetime.fromtimestamp(BASE_US / 1e6, UTC)
    version = -1
    for kind, copy, hours in steps:
        now += hours * HOUR
        batch = [(LEAD, copy)] if kind == "copy" and copy is not None else []
        lost = [(LEAD, copy.event_id, copy_digest(LEAD, copy))] if kind == "lose" and copy else []
        result = fold_batch(batch, table.get, CONFIG, now, retractions=lost)
        updates = result.updates
        if kind == "tick" and table:
            updates = [u for u in [refresh(LEAD, table[LEAD], CONFIG, now)] if u is not None]
        for update in updates:
            assert update.snapshot.version > version, (kind, copy)
            version = update.snapshot.version
            table[LEAD] = update.state
