"""Conflicting duplicates (contract section 2): the copy whose canonical JSON sorts first wins,
whatever the arrival order and the batches; every other copy is reported as a loser."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from leadflow.agents.batch import fold_batch, recovered
from leadflow.agents.codec import decode_copies, decode_state
from leadflow.agents.facts import Fact, canonical
from leadflow.agents.fold import LeadFold, fold
from leadflow.agents.partitioning import partition_of
from leadflow.agents.processor import Incoming
from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.records import LeadSnapshot
from leadflow.schemas.vocabulary import CONFLICTING_DUPLICATE
from leadflow.sinks import SqlSink, make_engine
from tests.support.fold_cases import CONFIG, NOW, facts
from tests.support.processors import NAMES, PARTITIONS, processor, run
from tests.support.queries import table_rows

T1 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@st.composite
def copies(draw: st.DrawFn) -> list[Fact]:
    """Events of one lead, some event_ids sent several times with other content."""
    ids = draw(st.integers(min_value=1, max_value=6))
    out = []
    for index in range(ids):
        out += [draw(facts(index)) for _ in range(draw(st.integers(min_value=1, max_value=3)))]
    return out


def winners(events: list[Fact]) -> dict[str, Fact]:
    best: dict[str, Fact] = {}
    for fact in events:
        kept = best.get(fact.event_id)
        if kept is None or canonical("L", fact) < canonical("L", kept):
            best[fact.event_id] = fact
    return best


def fold_in_batches(events: list[Fact], cuts: list[int]) -> tuple[dict[str, bytes], list[Fact]]:
    state: dict[str, bytes] = {}
    losers: list[Fact] = []
    bounds = [0, *sorted(cuts), len(events)]
    for start, end in itertools.pairwise(bounds):
        batch = [("L", fact) for fact in events[start:end]]
        result = fold_batch(batch, state.get, CONFIG, NOW)
        for update in result.updates:
            state[update.lead_id] = update.state
        losers += [copy for _, copy in result.conflicts]
    return state, losers


@settings(max_examples=300, deadline=None)
@given(events=copies(), data=st.data())
def test_any_order_and_partitioning_keep_the_same_copies(
    events: list[Fact], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(events))
    cuts = data.draw(st.lists(st.integers(0, len(order)), max_size=4))
    state, losers = fold_in_batches(order, cuts)
    best = winners(events)
    expected = fold("L", events, CONFIG, NOW)  # every copy seen counts in the version
    assert without_version(expected) == without_version(fold("L", best.values(), CONFIG, NOW))
    distinct = {canonical("L", fact) for fact in events}
    assert expected.version == 2 * len(distinct) + (expected.version % 2)
    running = LeadFold("L", CONFIG)
    running.add_many(order)
    assert running.snapshot(NOW) == expected
    assert sorted(running.facts) == sorted(best.values())
    _, kept_facts, lost, beaten = decode_copies(state["L"])
    decoded = LeadFold("L", CONFIG, kept_facts, lost, beaten)
    assert decoded.snapshot(NOW) == expected
    kept = set(best.values())
    assert {f for f in losers} == {f for f in events if f not in kept}


def without_version(snapshot: LeadSnapshot) -> LeadSnapshot:
    """The snapshot less what counts the copies seen: its version and its beaten copies."""
    lifecycle = {k: v for k, v in snapshot.lifecycle.items() if k != "version"}
    return replace(snapshot, version=0, lifecycle=lifecycle, beaten=[])


def copy_of(fact: Fact, **changes: object) -> Fact:
    return fact._replace(**changes)


BASE = Fact(ts=1_767_225_600_000_000, rank=0, event_id="e1", source="web")


def test_a_later_winning_copy_displaces_the_stored_one() -> None:
    loser, winner = copy_of(BASE, source="web"), copy_of(BASE, source="ads")
    assert canonical("L", winner) < canonical("L", loser)
    first = fold_batch([("L", loser)], {}.get, CONFIG, NOW)
    (update,) = first.updates
    second = fold_batch([("L", winner)], {"L": update.state}.get, CONFIG, NOW)
    assert second.conflicts == [(0, loser)]
    (restating,) = second.updates
    assert restating.snapshot.lifecycle["source"] == "ads"
    assert restating.snapshot.restated == ["e1"]
    third = fold_batch([("L", loser)], {"L": restating.state}.get, CONFIG, NOW)
    assert third.updates == [] and third.conflicts == [(0, loser)]


def test_an_identical_copy_is_a_plain_duplicate() -> None:
    result = fold_batch([("L", BASE), ("L", copy_of(BASE))], {}.get, CONFIG, NOW)
    assert result.conflicts == []
    assert result.outcomes["lead.created", "duplicate"] == 1


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def test_the_store_keeps_the_winning_copy_in_lead_events(engine: Engine) -> None:
    loser, winner = copy_of(BASE, source="web"), copy_of(BASE, source="ads")
    sink = SqlSink(engine)
    (first,) = fold_batch([("L", loser)], {}.get, CONFIG, NOW).updates
    sink.write_batch([first.snapshot], [], T1)
    (second,) = fold_batch([("L", winner)], {"L": first.state}.get, CONFIG, NOW).updates
    sink.write_batch([second.snapshot], [], T1)
    sink.write_batch([first.snapshot], [], T1)  # a replay of the older snapshot changes nothing
    (row,) = table_rows(engine, "lead_events")
    assert row["source"] == "ads"
    assert table_rows(engine, "lead_lifecycle")[0]["source"] == "ads"


class LetterSink:
    """Keeps the dead letters written."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def write_batch(
        self, snapshots: Sequence[LeadSnapshot], dead_letters: Sequence[DeadLetter], now: datetime
    ) -> int:
        self.letters += dead_letters
        return len(snapshots) + len(dead_letters)

    def close(self) -> None:
        pass


def created_as(source: str, offset: int) -> Incoming:
    value = (
        '{"event_id":"A-c","event_type":"lead.created","lead_id":"A",'
        f'"occurred_at":"2026-05-01T10:00:00Z","source":"{source}"}}'
    ).encode()
    return Incoming(NAMES.marketing, partition_of("A", PARTITIONS), offset, value)


@pytest.mark.parametrize("order", ["winner first", "loser first"])
def test_the_worker_dead_letters_every_losing_copy(order: str) -> None:
    winner, loser = created_as("ads", 1), created_as("web", 2)
    sink = LetterSink()

    async def body() -> None:
        async def send(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        lead = processor(sink, send)  # type: ignore[arg-type]
        for message in [winner, loser] if order == "winner first" else [loser, winner]:
            await (await lead.handle_input([message]))
        assert decode_state(lead.table["A"])[1][0].source == "ads"
        lead.close()

    run(body)
    (letter,) = sink.letters
    assert letter.reason == CONFLICTING_DUPLICATE
    assert letter.offset == (2 if order == "winner first" else 1)
    assert '"source":"web"' in letter.payload


@pytest.mark.parametrize("first", ["plain", "with campaign"])
def test_copies_that_differ_after_their_event_id_only(first: str) -> None:
    plain, other = BASE, copy_of(BASE, campaign_id="C-1")
    order = [plain, other] if first == "plain" else [other, plain]
    running = LeadFold("L", CONFIG, [copy_of(BASE, event_id="e0")])
    for fact in order:
        running.add_many([fact])
    best = winners([plain, other])["e1"]
    assert [f for f in running.facts if f.event_id == "e1"] == [best]


def test_a_recovered_lead_keeps_the_personal_data_of_its_state() -> None:
    created = copy_of(BASE, email="ana@example.com")
    (update,) = fold_batch([("L", created)], {}.get, CONFIG, NOW).updates
    history = [copy_of(BASE), copy_of(BASE, event_id="e2", rank=1, campaign_id="C-1")]
    again = recovered("L", update.state, history, CONFIG, NOW)
    assert again.snapshot.contact is not None
    assert again.snapshot.contact["email"] == "ana@example.com"
    assert again.snapshot.lifecycle["event_count"] == 2
