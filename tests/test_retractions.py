"""A lead whose copy of an event_id loses to another lead's stops counting the event, live
(contract section 2): the store records the loss, the lead's owner folds a retraction, and the
live rows equal the pure fold with the winner decided over every lead."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from leadflow.agents.batch import fold_batch, lost_of
from leadflow.agents.codec import decode_copies, decode_lead, encode_retraction, encode_state
from leadflow.agents.facts import Fact, canonical, copy_digest, to_micros
from leadflow.agents.fold import Header, LeadFold, fold
from leadflow.agents.partitioning import partition_of
from leadflow.agents.processor import Incoming
from leadflow.schemas.records import LeadSnapshot, Loss
from leadflow.sinks import SqlSink, make_engine
from leadflow.sinks.conflicts import row_canonical
from tests.support.fold_cases import CONFIG, NOW, facts
from tests.support.processors import ALL, NAMES, PARTITIONS, REKEYED, feed, run, worker
from tests.support.processors import CONFIG as LIVE
from tests.support.queries import table_rows
from tests.support.rebuilds import rebuild_when_free

LEADS = ("A", "B", "C")
SHARED = "x"


def own_facts(lead_id: str, drawn: list[Fact]) -> list[Fact]:
    return [fact._replace(event_id=f"{lead_id}-{i}") for i, fact in enumerate(drawn)]


class StoreModel:
    """What the store decides of the shared event_id: the copy whose canonical JSON sorts
    first keeps it, each other lead's copy is a recorded loss (as sinks/conflicts.py)."""

    def __init__(self) -> None:
        self.held: tuple[bytes, str] | None = None
        self.losses: set[Loss] = set()

    def write(self, lead_id: str, rows: list[dict[str, object]]) -> list[Loss]:
        found = []
        for row in rows:
            if row["event_id"] != SHARED:
                continue
            key = row_canonical(row, None)
            held = self.held
            if held is None or held[1] == lead_id or key < held[0]:
                if held is not None and held[1] != lead_id:
                    found.append((held[1], SHARED, hashlib.sha256(held[0]).hexdigest()))
                self.held = (key, lead_id)
            else:
                found.append((lead_id, SHARED, hashlib.sha256(key).hexdigest()))
        self.losses.update(found)
        return found

    def lost(self, lead_id: str) -> dict[str, set[str]]:
        digests = {copy for lead, _, copy in self.losses if lead == lead_id}
        return {SHARED: digests} if digests else {}


def without_version(snapshot: LeadSnapshot) -> LeadSnapshot:
    """The snapshot less what counts the copies seen: its version and its beaten copies."""
    lifecycle = {k: v for k, v in snapshot.lifecycle.items() if k != "version"}
    return replace(snapshot, version=0, lifecycle=lifecycle, beaten=[])


@settings(max_examples=300, deadline=None)
@given(
    owns=st.tuples(*(st.lists(facts(0), max_size=3) for _ in LEADS)),
    copies=st.lists(
        st.tuples(st.sampled_from(LEADS), facts(9), st.integers(1, 2)), min_size=1, max_size=5
    ),
    data=st.data(),
)
def test_any_order_and_batching_of_copies_and_retractions_gives_the_pure_fold(
    owns: tuple[list[Fact], list[Fact], list[Fact]],
    copies: list[tuple[str, Fact, int]],
    data: st.DataObject,
) -> None:
    """Copies of one event_id sent for several leads (some several, each maybe twice), in any
    order and batching, the retractions delivered at any later time: the copy whose canonical
    JSON sorts first over all leads keeps it, every lead's rows are the pure fold's, each
    lead's version grows with each change, and the state is what rebuild folds from the
    store (lead_events and lead_retractions)."""
    own = {lead: own_facts(lead, drawn) for lead, drawn in zip(LEADS, owns, strict=True)}
    shared = [(lead, fact._replace(event_id=SHARED), times) for lead, fact, times in copies]
    sends = [(lead, fact) for lead, fact, times in shared for _ in range(times)]
    mixed = [*((who, fact) for who, kept in own.items() for fact in kept), *sends]
    items = data.draw(st.permutations(mixed))
    table: dict[str, bytes] = {}
    versions: dict[str, int] = {}
    store = StoreModel()
    pending: list[Loss] = []
    while items or pending:
        size = data.draw(st.integers(1, max(1, len(items))))
        batch, items = items[:size], items[size:]
        deliver = data.draw(st.integers(0, len(pending))) if items else len(pending)
        retractions, pending = pending[:deliver], pending[deliver:]
        result = fold_batch(batch, table.get, CONFIG, NOW, retractions=retractions)
        for update in result.updates:
            snap = update.snapshot
            before = versions.get(update.lead_id, -1)
            assert snap.version > before or snap.restated  # a restated copy: see the README
            versions[update.lead_id] = snap.version
            table[update.lead_id] = update.state
            pending += store.write(update.lead_id, snap.events)
    winner, copy = min(((lead, fact) for lead, fact, _ in shared), key=lambda c: canonical(*c))
    assert store.held is not None and store.held[1] == winner
    for lead in LEADS:
        mine = [copy] if lead == winner else []
        lost = {SHARED: {"-"}} if lead != winner and any(w == lead for w, _, _ in shared) else {}
        want = fold(lead, own[lead] + mine, CONFIG, NOW, lost)
        _, held, held_lost, beaten = decode_copies(table.get(lead))
        got = LeadFold(lead, CONFIG, held, held_lost, beaten).snapshot(NOW)
        assert without_version(got) == without_version(want), lead
        assert got == fold(lead, own[lead] + mine, CONFIG, NOW, store.lost(lead), beaten), lead
        assert {k: set(v) for k, v in held_lost.items()} == store.lost(lead), lead
        # Every copy of the shared event_id the lead sent counts in its version.
        sent = {copy_digest(lead, fact) for who, fact, _ in shared if who == lead}
        kept = {copy_digest(lead, fact) for fact in held if fact.event_id == SHARED}
        assert kept | set(beaten.get(SHARED, ())) | store.lost(lead).get(SHARED, set()) == sent


def test_a_state_written_before_losses_existed_still_decodes() -> None:
    created = Fact(ts=1_767_225_600_000_000, rank=0, event_id="c", source="web")
    header = Header("lead", False, None, "")
    old = orjson.dumps(["lead", False, None, "", [list(created[:4])]])
    assert decode_lead(old) == (header, [created], {})
    big = [created._replace(event_id=f"e{i:05}", campaign_id="c" * 40) for i in range(500)]
    for kept in ([created], big):  # format 0 and format 1 (compressed)
        plain = encode_state(header, kept)
        assert decode_lead(plain) == (header, kept, {})
        lost = {"y": ["0" * 64], "x": ["1" * 64, "2" * 64]}
        assert decode_lead(encode_state(header, kept, None, lost)) == (header, kept, lost)


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


AT = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
WRITTEN = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def message(lead_id: str, offset: int, event_id: str, **fields: str) -> Incoming:
    """An event for ``lead_id`` on that lead's partition of the marketing topic."""
    document = {"event_id": event_id, "lead_id": lead_id, "occurred_at": AT.isoformat(), **fields}
    value = json.dumps(document).encode()
    return Incoming(NAMES.marketing, partition_of(lead_id, PARTITIONS), offset, value)


def touch(lead_id: str, offset: int, campaign: str) -> Incoming:
    return message(lead_id, offset, SHARED, event_type="lead.touch", campaign_id=campaign)


def created(lead_id: str, offset: int) -> Incoming:
    return message(lead_id, offset, f"{lead_id}-c", event_type="lead.created", source="web")


def touch_fact(campaign: str) -> Fact:
    return Fact(ts=to_micros(AT), rank=1, event_id=SHARED, campaign_id=campaign)


def lifecycle(engine: Engine) -> dict[str, dict[str, object]]:
    return {row["lead_id"]: row for row in table_rows(engine, "lead_lifecycle")}


def test_a_stored_copy_displaced_by_one_that_sorts_first_leaves_its_lead(engine: Engine) -> None:
    # B's copy is stored first; A's, whose canonical JSON sorts first, then displaces it.
    lead = worker(engine, {})
    feed(lead, [created("B", 1), touch("B", 2, "C-B")])
    before = lifecycle(engine)["B"]
    assert before["campaign_id"] == "C-B" and before["event_count"] == 2
    feed(lead, [touch("A", 3, "C-A")])
    lead.close()
    rows = lifecycle(engine)
    b_created = Fact(ts=to_micros(AT), rank=0, event_id="B-c", source="web")
    lost = {SHARED: {copy_digest("B", touch_fact("C-B"))}}
    want = fold("B", [b_created], LIVE, NOW, lost)
    assert {k: v for k, v in rows["B"].items() if k != "updated_at"} == want.lifecycle
    assert rows["B"]["campaign_id"] is None and rows["B"]["event_count"] == 1
    assert rows["B"]["version"] == want.version == before["version"] + 2
    assert rows["A"]["campaign_id"] == "C-A"
    losses = table_rows(engine, "lead_retractions")
    assert [(r["lead_id"], r["event_id"]) for r in losses] == [("B", SHARED)]
    assert {losses[0]["copy_sha256"]} == lost[SHARED]
    snapshots = [json.loads(v) for t, v in REKEYED[lead].records if t == NAMES.lifecycle]
    last_b = [s for s in snapshots if s["lead_id"] == "B"][-1]
    assert last_b["version"] == want.version and last_b["event_count"] == 1
    assert last_b["campaign_id"] is None


def test_a_lead_left_with_no_event_has_no_rows_and_a_stale_snapshot_cannot_restore_them(
    engine: Engine,
) -> None:
    lead = worker(engine, {})
    feed(lead, [touch("B", 1, "C-B")])
    (stale,) = fold_batch([("B", touch_fact("C-B"))], {}.get, LIVE, NOW).updates
    feed(lead, [touch("A", 2, "C-A")])
    assert lead.owned.orphans == 1, "A has no lead.created; B has no event at all"
    lead.close()
    assert set(lifecycle(engine)) == {"A"}
    assert not [r for r in table_rows(engine, "lead_stage_transitions") if r["lead_id"] == "B"]
    SqlSink(engine).write_batch([stale.snapshot], [], WRITTEN)  # a late write of the first one
    assert set(lifecycle(engine)) == {"A"}
    funnel = table_rows(engine, "funnel_daily")
    assert sum(row["leads"] for row in funnel) == 0  # a touch enters no stage


def test_a_loss_whose_retraction_was_never_sent_is_applied_by_the_recovery(
    engine: Engine, migrated_url: str
) -> None:
    table: dict[str, bytes] = {}
    first = worker(engine, table)
    feed(first, [created("B", 1), touch("B", 2, "C-B"), touch("A", 3, "C-A")], rekeyed=False)
    assert REKEYED[first].take(), "the retraction the worker sent, never delivered"
    first.close()
    assert lifecycle(engine)["B"]["event_count"] == 2
    second = worker(engine, table)
    run(lambda: second.recover(ALL))
    second.close()
    assert (SHARED, copy_digest("B", touch_fact("C-B"))) in lost_of(table["B"])
    rows = lifecycle(engine)
    assert rows["B"]["event_count"] == 1 and rows["B"]["campaign_id"] is None
    moved = rebuild_when_free(migrated_url, LIVE)
    assert moved.rewritten == 0, "the rebuild reads the losses as the live pipeline did"


def test_a_lost_lead_created_with_personal_data_other_than_its_leads_contact_leaves(
    engine: Engine,
) -> None:
    # B's contact is its own first lead.created; the shared one carries other personal data.
    lead = worker(engine, {})
    own = message(
        "B",
        1,
        "B-c",
        event_type="lead.created",
        source="web",
        email="b@example.com",
        occurred_at="2026-04-01T10:00:00+00:00",
    )
    copies = [
        message(who, 2 + i, SHARED, event_type="lead.created", source="ads", email="a@example.com")
        for i, who in enumerate(("B", "A"))
    ]
    feed(lead, [own, *copies])
    lead.close()
    rows = lifecycle(engine)
    assert rows["B"]["event_count"] == 1 and rows["B"]["source"] == "web"
    shared = Fact(ts=to_micros(AT), rank=0, event_id=SHARED, source="ads", email="a@example.com")
    (loss,) = table_rows(engine, "lead_retractions")
    assert loss["copy_sha256"] == copy_digest("B", shared)


def test_a_producer_cannot_send_a_retraction(engine: Engine) -> None:
    lead = worker(engine, {})
    feed(lead, [created("B", 1)])
    forged = encode_retraction("B", "B-c", copy_digest("B", Fact(to_micros(AT), 0, "B-c")))
    feed(lead, [Incoming(NAMES.marketing, partition_of("B", PARTITIONS), 2, forged)])
    lead.close()
    assert lifecycle(engine)["B"]["event_count"] == 1
    (letter,) = table_rows(engine, "dead_letters")
    assert letter["reason"] == "invalid_event" and letter["offset"] == 2
    assert not table_rows(engine, "lead_retractions")
