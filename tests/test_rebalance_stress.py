"""Rebalance stress: three workers join and leave at random under steady input; no event lost.

For ``DURATION`` seconds a publisher thread sends a steady stream of simulated events while
workers join, stop (SIGTERM) or are killed (SIGKILL), at random, between one and three at
a time: every change is a rebalance, many of them mid-fetch and mid-seek. Afterwards every
table of the store equals the pure fold over every message sent.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer

from leadflow.pipeline.demo import WorkerProcess
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from tests.support.faults import assert_store_equals, expected_of, sigkill, wait_store
from tests.support.fixtures import WorkerFactory
from tests.support.traffic import bootstrap, kinds, raw, sim

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(420)]

DURATION = 75.0  # seconds of joins and leaves under input
MAX_WORKERS = 3
SEED = 2207


def publish_steadily(servers: str, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    """Send ``messages`` in equal chunks spread over ``DURATION`` seconds."""
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5)
    chunks = 150
    size = -(-len(messages) // chunks)
    started = time.monotonic()
    try:
        for i in range(chunks):
            for topic, key, value in messages[i * size : (i + 1) * size]:
                producer.send(topic, value=value, key=key)
            producer.flush()
            time.sleep(max(0.0, started + (i + 1) * DURATION / chunks - time.monotonic()))
    finally:
        producer.close()


def change_membership(
    rng: random.Random, alive: list[WorkerProcess], start: WorkerFactory, url: str
) -> str:
    """Add or remove one worker at random, keeping between one and three."""
    joins = len(alive) == 1 or (len(alive) < MAX_WORKERS and rng.random() < 0.5)
    if joins:
        alive.append(start(url))
        return "join"
    leaver = alive.pop(rng.randrange(len(alive)))
    if rng.random() < 0.5:
        sigkill(leaver)
        return "kill"
    leaver.stop()
    return "stop"


def test_workers_joining_and_leaving_at_random_lose_nothing(
    broker: EmbeddedBroker, pg_schema_url: str, start_worker: WorkerFactory
) -> None:
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    messages = sim(1500, seed=SEED, now=now)
    expected = expected_of(kinds(messages), now)
    url = pg_schema_url
    alive = [start_worker(url)]
    publisher = threading.Thread(
        target=publish_steadily, args=(bootstrap(broker), raw(messages)), daemon=True
    )
    publisher.start()
    changes: list[str] = []
    deadline = time.monotonic() + DURATION
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.5, 3.0))
        changes.append(change_membership(rng, alive, start_worker, url))
    publisher.join(60)
    assert not publisher.is_alive(), "the publisher did not finish"
    took = wait_store(url, expected, timeout=180, workers=alive)
    assert_store_equals(url, expected)
    # Worker start-up time (a few seconds, more on a loaded machine) bounds the changes.
    assert len(changes) >= 6 and {"join", "kill"} <= set(changes), changes
    print(
        f"\nrebalance stress: {len(messages)} messages, {len(changes)} membership changes "
        f"({', '.join(changes)}), {len(alive)} workers at the end, caught up {took:.1f}s later"
    )
