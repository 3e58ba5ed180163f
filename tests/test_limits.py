"""Issue #5, limits, without a broker: the event cap, the state size cap, the state codec."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime

import orjson
import pytest

from leadflow.agents.batch import FoldCache, Limits, fold_batch
from leadflow.agents.codec import (
    COMPRESS_ABOVE,
    STATE_LIMIT,
    decode_forwarded,
    decode_header,
    decode_state,
    encode_fact,
    encode_state,
    event_payload,
)
from leadflow.agents.facts import Fact
from leadflow.agents.fold import LeadFold, fold, header_of
from leadflow.schemas.classify import classify
from leadflow.schemas.events import BaseEvent
from tests.support.faults import CONFIG

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BASE_US = 1_767_225_600_000_000  # 2026-01-01


def _text(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def touches(count: int, *, seed: int = 1, long: bool = False) -> list[Fact]:
    """A lead.created then touches one second apart; ``long``: random 128-character event ids
    and 256-character campaign ids (the schema's longest, and incompressible)."""
    rng = random.Random(seed)
    facts = []
    for n in range(count):
        event_id = _text(rng, 128) if long else f"e{n}"
        campaign = _text(rng, 256) if long else "cmp-1"
        if n == 0:
            facts.append(Fact(BASE_US, 0, event_id, "paid_search", campaign))
        else:
            facts.append(Fact(BASE_US + n * 1_000_000, 1, event_id, None, campaign))
    return facts


def run(
    facts: list[Fact], batch: int, limits: Limits, cache: FoldCache | None = None
) -> tuple[dict[str, bytes], list[tuple[Fact, str]]]:
    """Feed ``facts`` of lead L in batches, as the processor does; the table and the refused."""
    table: dict[str, bytes] = {}
    refused: list[tuple[Fact, str]] = []
    for start in range(0, len(facts), batch):
        chunk = [("L", fact) for fact in facts[start : start + batch]]
        result = fold_batch(chunk, table.get, CONFIG, NOW, limits=limits, cache=cache)
        refused += [(chunk[index][1], error) for index, error in result.refused]
        for update in result.updates:
            table[update.lead_id] = update.state
    return table, refused


def test_events_past_the_cap_are_refused_in_arrival_order_and_duplicates_are_not() -> None:
    facts = touches(130)
    arrival = facts[:]
    random.Random(3).shuffle(arrival)
    arrival += arrival[:10]  # duplicates of accepted events, after the cap: still duplicates
    table, refused = run(arrival, 7, Limits(max_events=100), FoldCache(min_events=1))
    kept = arrival[:100]
    assert [fact for fact, _ in refused] == arrival[100:130]
    assert all("already has 100 events" in error for _, error in refused)
    _, stored = decode_state(table["L"])
    assert stored == sorted(kept)
    assert LeadFold("L", CONFIG, stored).snapshot(NOW) == fold("L", kept, CONFIG, NOW)


@pytest.mark.parametrize("batch", [1, 10, 333])
def test_the_cache_changes_nothing(batch: int) -> None:
    facts = touches(1000)
    random.Random(batch).shuffle(facts)
    limits = Limits(max_events=900)
    cached, refused_cached = run(facts, batch, limits, FoldCache(min_events=1))
    plain, refused_plain = run(facts, batch, limits)
    assert cached == plain and refused_cached == refused_plain
    assert len(refused_plain) == 100


def test_a_lead_at_the_cap_with_the_longest_ids_fits_a_changelog_record() -> None:
    facts = touches(10_000, long=True)
    random.Random(5).shuffle(facts)
    table, refused = run(facts, 500, Limits(), FoldCache())
    state = table["L"]
    assert len(state) <= STATE_LIMIT < 1024 * 1024 - 1024
    header, stored = decode_state(state)
    gone = {fact for fact, _ in refused}
    accepted = [fact for fact in facts if fact not in gone]
    assert stored == sorted(accepted)  # the record holds exactly the accepted events
    assert header == decode_header(state) == header_of(fold("L", accepted, CONFIG, NOW))
    # Incompressible 128 + 256 characters a touch: the byte limit, not the count, stops it.
    assert refused and all("would pass 1000000 bytes" in error for _, error in refused)
    assert accepted == facts[: len(accepted)], "the first to arrive are kept"
    print(f"\nlongest ids: {len(accepted)} events kept in {len(state)} bytes")


def test_a_lead_at_the_cap_with_typical_ids_keeps_every_event_in_a_small_record() -> None:
    facts = touches(10_000)
    random.Random(6).shuffle(facts)
    table, refused = run(facts, 100, Limits(), FoldCache())
    assert not refused
    state = table["L"]
    assert len(state) < 128 * 1024
    assert decode_state(state)[1] == sorted(facts)


def test_small_states_stay_plain_json_and_the_old_encoding_still_decodes() -> None:
    facts = touches(20)
    lead = LeadFold("L", CONFIG, facts)
    header = header_of(lead.snapshot(NOW))
    state = encode_state(header, lead.facts)
    old = orjson.dumps([*header, [tuple(f) for f in lead.facts]])  # untrimmed rows decode too
    assert state.startswith(b"[") and orjson.loads(state)[:4] == list(header)
    assert decode_state(state) == decode_state(old) == (header, lead.facts)
    big = LeadFold("L", CONFIG, touches(2000))
    header = header_of(big.snapshot(NOW))
    packed = encode_state(header, big.facts)
    assert len(orjson.dumps([list(f) for f in big.facts])) > COMPRESS_ABOVE
    assert packed[:1] == b"\x01"
    assert decode_state(packed) == (header, big.facts) and decode_header(packed) == header


def test_a_forwarded_event_keeps_where_it_came_in() -> None:
    fact = touches(2)[1]
    assert decode_forwarded(encode_fact("L", fact)) == ("L", fact, None)
    origin = ("marketing-leads", 3, 41)
    assert decode_forwarded(encode_fact("L", fact, origin)) == ("L", fact, origin)
    verdict = classify(event_payload("L", fact), "marketing", NOW)
    assert isinstance(verdict, BaseEvent) and Fact.from_event(verdict) == fact
