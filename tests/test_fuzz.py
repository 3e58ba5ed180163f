"""Issue #5, bad input at scale: the classifier never raises, a live worker never loses count.

The classifier is fuzzed with hypothesis (arbitrary bytes, arbitrary JSON, mutated valid
events). The live worker gets a seeded stream of the same kinds of mutations (hypothesis
cannot draw thousands of messages in one example); every message must be folded or
dead-lettered exactly once.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow.agents.codec import decode_forwarded, encode_fact
from leadflow.agents.facts import Fact
from leadflow.agents.fold import fold
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.publish.simulate import simulate
from leadflow.schemas.classify import DeadLetter, Rejection, classify
from leadflow.schemas.events import BaseEvent
from leadflow.schemas.vocabulary import REJECTION_REASONS as REASONS
from leadflow.schemas.vocabulary import SALES_TYPES
from tests.support.faults import (
    CONFIG,
    TOPIC_OF,
    assert_store_equals,
    expected_of,
    publish_positions,
    wait_for,
    wait_store,
)
from tests.support.fixtures import WorkerFactory

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SEED_EVENTS = [
    json.loads(m.value) for m in simulate(40, seed=71, start=NOW - timedelta(days=3)) if m.valid
]
FIELDS = sorted({k for e in SEED_EVENTS for k in e} | {"schema_version", "padding"})
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ODD_VALUES: list[Any] = [
    None,
    "",
    " ",
    "\x00",
    "\ud7ff",
    "é" * 200,
    "x" * 129,
    0,
    -1,
    2**31,
    2**63,
    2**64,
    1e308,
    -0.0,
    "1e400",
    "NaN",
    "-0.00",
    "9999999999999999.99",
    "10000000000000000.00",
    [],
    {},
    True,
    "2026-02-30T00:00:00Z",
    "2026-05-31T00:00:00",
    "1999-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z",
    "2026-05-30T00:00:00+14:00",
    "2026-05-30T00:00:00-23:59",
    "lead.created",
    "deal.won",
    "EUR",
    "eur",
    "US$",
]


def check(raw: bytes, kind: str) -> BaseEvent | Rejection:
    verdict = classify(raw, kind, NOW)  # must never raise
    if isinstance(verdict, Rejection):
        assert verdict.reason in REASONS
        assert verdict.error
        letter = DeadLetter.of(raw, verdict, "t", 0, 0, NOW)
        assert len(letter.payload.encode()) <= 4 * 64 * 1024
    else:
        assert isinstance(verdict, BaseEvent)
        fact = Fact.from_event(verdict)
        lead_id, back, origin = decode_forwarded(encode_fact(verdict.lead_id, fact))
        assert (lead_id, back, origin) == (verdict.lead_id, fact, None)
        fold(verdict.lead_id, [fact], CONFIG, NOW)
    return verdict


def mutate(rng: random.Random, event: dict[str, Any]) -> tuple[str, bytes]:
    """One mutated version of a valid event, as (topic kind, bytes)."""
    body = dict(event)
    kind = "sales" if body["event_type"] in SALES else "marketing"
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(8)
        name = rng.choice(FIELDS)
        if op == 0:
            body.pop(name, None)
        elif op == 1:
            body[name] = rng.choice(ODD_VALUES)
        elif op == 2:
            body[name] = rng.random() * 10 ** rng.randint(0, 20)
        elif op == 3:
            kind = rng.choice(("marketing", "sales"))
        elif op == 4:
            body["event_type"] = rng.choice([*TYPES, "lead.teleported", "LEAD.CREATED"])
        elif op == 5:
            # A new id: two different events under one id would make the result depend on
            # which arrives first, which the contract leaves open.
            body["event_id"] = f"{body.get('event_id')}~{rng.randrange(10**9)}"
    event_id = body.get("event_id")
    if event_id == event["event_id"] or (isinstance(event_id, str) and "~" not in event_id):
        # Ids stay unique, an odd value too: copies of one id with other content (on another
        # lead, say) are the conflicting-duplicate tests' case, not this one's.
        body["event_id"] = f"{event_id}~{rng.randrange(10**9)}"
    raw = json.dumps(body).encode()
    op = rng.randrange(10)
    if op == 0:
        cut = rng.randrange(len(raw))
        raw = raw[:cut] + bytes([rng.randrange(256)]) + raw[cut + 1 :]
    elif op == 1:
        raw = raw[: rng.randrange(len(raw))]
    elif op == 2:
        raw = rng.randbytes(rng.randint(0, 64))
    return kind, raw


SALES = set(SALES_TYPES)
TYPES = sorted(SALES | {"lead.created", "lead.touch", "lead.scored", "lead.mql"})


# -- the classifier ------------------------------------------------------------------------------

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(["marketing", "sales"]))
def test_classify_never_raises_on_bytes(raw: bytes, kind: str) -> None:
    check(raw, kind)


@FUZZ
@given(JSON, st.sampled_from(["marketing", "sales"]))
def test_classify_never_raises_on_any_json(value: Any, kind: str) -> None:
    check(json.dumps(value).encode(), kind)


@FUZZ
@given(
    st.sampled_from(SEED_EVENTS),
    st.dictionaries(st.sampled_from(FIELDS), JSON | st.sampled_from(ODD_VALUES), max_size=3),
    st.sets(st.sampled_from(FIELDS), max_size=2),
    st.sampled_from(["marketing", "sales"]),
)
def test_classify_never_raises_on_mutated_events(
    event: dict[str, Any], changes: dict[str, Any], dropped: set[str], kind: str
) -> None:
    body = {k: v for k, v in {**event, **changes}.items() if k not in dropped}
    check(json.dumps(body).encode(), kind)


@FUZZ
@given(st.integers(0, 2**32), st.sampled_from(SEED_EVENTS))
def test_classify_never_raises_on_seeded_mutations(seed: int, event: dict[str, Any]) -> None:
    kind, raw = mutate(random.Random(seed), event)
    check(raw, kind)


# -- a live worker -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.broker
def test_a_live_worker_folds_or_dead_letters_every_fuzzed_message_once(
    broker: EmbeddedBroker, database_url: str, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    rng = random.Random(72)
    base = simulate(150, seed=73, start=now - timedelta(days=3), key_mode="none")
    events = [json.loads(m.value) for m in base if m.valid]
    sent: list[tuple[str, bytes]] = [(m.topic_kind, m.value) for m in base]
    for _ in range(3000):
        sent.append(mutate(rng, rng.choice(events)))
    rng.shuffle(sent)
    expected = expected_of(sent, now)
    worker = start_worker(database_url)
    keys = [None, b"", b"k", rng.randbytes(300)]
    publish_positions(
        broker.url.removeprefix("kafka://"),
        [(TOPIC_OF[k], rng.choice(keys), v) for k, v in sent],
    )
    wait_store(database_url, expected, timeout=90, workers=[worker])
    wait_for("the events counter", lambda: worker.processed() >= len(sent), timeout=30)
    assert worker.processed() == len(sent), "leadflow_events_total must count each message once"
    assert_store_equals(database_url, expected)
    print(
        f"\nfuzz: {len(sent)} messages, {expected.invalid} dead-lettered, "
        f"{expected.events} distinct events folded"
    )
