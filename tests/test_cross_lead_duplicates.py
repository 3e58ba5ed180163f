"""One event_id sent for two leads (contract section 2): lead_events keeps the copy whose
canonical JSON sorts first, in either write order, the other lead's copy is a
conflicting_duplicate dead letter, and ``leadflow rebuild`` then gives each lead what the
contract's fold gives (the losing lead without the event)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from leadflow.agents.batch import fold_batch
from leadflow.agents.codec import event_row
from leadflow.agents.facts import Fact, canonical, copy_digest
from leadflow.agents.fold import fold
from leadflow.agents.partitioning import partition_of
from leadflow.agents.processor import Incoming
from leadflow.schemas.vocabulary import CONFLICTING_DUPLICATE
from leadflow.sinks import SqlSink, make_engine
from leadflow.sinks.conflicts import row_canonical
from tests.support.fold_cases import CONFIG, NOW, facts
from tests.support.processors import NAMES, PARTITIONS, feed, worker
from tests.support.queries import table_rows
from tests.support.rebuilds import rebuild_when_free

WRITTEN = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PERSONAL = st.none() | st.sampled_from(["ana@example.com", "Acme", "PT", "zz"])


@settings(max_examples=300, deadline=None)
@given(fact=facts(0), lead=st.sampled_from(["A", "B", "zz"]), data=st.data())
def test_the_store_reads_the_canonical_json_the_fold_compares(
    fact: Fact, lead: str, data: st.DataObject
) -> None:
    personal = {k: data.draw(PERSONAL) for k in ("email", "company", "country")}
    if fact.rank == 0:
        fact = fact._replace(**personal)
    row = event_row(lead, fact)
    assert row_canonical(row, personal if fact.rank == 0 else None) == canonical(lead, fact)


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


CREATED = Fact(ts=1_767_225_600_000_000, rank=0, event_id="a-created", source="web")
SHARED = Fact(ts=1_767_229_200_000_000, rank=1, event_id="shared", campaign_id="C-1")


def lead_facts(lead_id: str) -> list[Fact]:
    created = CREATED._replace(event_id=f"{lead_id}-created")
    return [created, SHARED._replace(campaign_id=f"C-{lead_id}")]


def write_lead(sink: SqlSink, lead_id: str) -> None:
    batch = [(lead_id, fact) for fact in lead_facts(lead_id)]
    (update,) = fold_batch(batch, {}.get, CONFIG, NOW).updates
    sink.write_batch([update.snapshot], [], WRITTEN)


@pytest.mark.parametrize("order", [("A", "B"), ("B", "A")])
def test_the_copy_that_sorts_first_keeps_the_event_in_either_order(
    engine: Engine, migrated_url: str, order: tuple[str, str]
) -> None:
    a, b = (lead_facts(lead)[1] for lead in ("A", "B"))
    assert canonical("A", a) < canonical("B", b)
    sink = SqlSink(engine)
    for lead_id in order:
        write_lead(sink, lead_id)
    shared = [row for row in table_rows(engine, "lead_events") if row["event_id"] == "shared"]
    assert [(row["lead_id"], row["campaign_id"]) for row in shared] == [("A", "C-A")]

    rebuild_when_free(migrated_url, CONFIG, NOW)
    rows = {row["lead_id"]: row for row in table_rows(engine, "lead_lifecycle")}
    winner = fold("A", lead_facts("A"), CONFIG, NOW).lifecycle
    lost = {"shared": {copy_digest("B", lead_facts("B")[1])}}
    loser = fold("B", lead_facts("B")[:1], CONFIG, NOW, lost).lifecycle
    for lead_id, want in (("A", winner), ("B", loser)):
        got = {k: v for k, v in rows[lead_id].items() if k != "updated_at"}
        assert got == want, f"lead {lead_id} after the rebuild"


def touch_of(lead_id: str, offset: int) -> Incoming:
    """``shared``, a lead.touch sent for ``lead_id``, on that lead's partition."""
    document = {
        "event_id": "shared",
        "event_type": "lead.touch",
        "lead_id": lead_id,
        "occurred_at": "2026-05-01T10:00:00Z",
        "campaign_id": f"C-{lead_id}",
    }
    value = json.dumps(document).encode()
    return Incoming(NAMES.marketing, partition_of(lead_id, PARTITIONS), offset, value)


@pytest.mark.parametrize("order", [("A", "B"), ("B", "A")])
def test_the_worker_dead_letters_the_other_leads_copy(
    engine: Engine, order: tuple[str, str]
) -> None:
    offsets = {"A": 7, "B": 8}
    lead = worker(engine, {})
    for lead_id in order:
        feed(lead, [touch_of(lead_id, offsets[lead_id])])
    feed(lead, [touch_of(lead_id, offsets[lead_id]) for lead_id in order])  # read again
    lead.close()
    shared = [row for row in table_rows(engine, "lead_events") if row["event_id"] == "shared"]
    assert [row["lead_id"] for row in shared] == ["A"]
    (letter,) = table_rows(engine, "dead_letters")
    assert letter["reason"] == CONFLICTING_DUPLICATE
    assert json.loads(letter["payload"])["lead_id"] == "B"
    # Its own message when it came second, else the message of the copy that displaced it.
    assert letter["offset"] == offsets[order[1]]


def test_the_losing_leads_live_rows_do_not_count_the_event(engine: Engine) -> None:
    lead = worker(engine, {})
    feed(lead, [touch_of("B", 1), touch_of("A", 2)])
    lead.close()
    leads = {row["lead_id"] for row in table_rows(engine, "lead_lifecycle")}
    assert leads == {"A"}, "B's only event is A's: the pure fold has no row for B"
