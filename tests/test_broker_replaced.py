"""Kafka loses its state mid-stream: every table still equals the pure fold over all events.

Half the traffic goes to a broker that is then replaced by a new, empty one on the same port
(the embedded broker keeps nothing), or loses only the workers' changelog topic; the workers
restart and the rest follows, with later events for the same leads. The workers' state is
rebuilt from lead_events before they fold anything, and dead letters at reused offsets are
new rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from kafka.admin import KafkaAdminClient

from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.kafka.topics import ensure_topics
from leadflow.pipeline.settings import Settings
from tests.support.faults import assert_store_equals, expected_of, publish_positions, wait_store
from tests.support.fixtures import WorkerFactory, settings_for
from tests.support.traffic import bootstrap, kinds, raw, sim

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def replace_broker(broker: EmbeddedBroker, url: str) -> None:
    broker.stop()
    time.sleep(1)
    broker.start()
    ensure_topics(settings_for(broker, url))


def delete_changelog(broker: EmbeddedBroker, url: str) -> None:
    changelog = Settings(broker=broker.url).topic_names().changelog
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(broker), request_timeout_ms=10_000)
    try:
        admin.delete_topics([changelog])
    finally:
        admin.close()
    time.sleep(1)
    ensure_topics(settings_for(broker, url))  # the worker's table gets an empty changelog


def run_with_a_loss(
    broker: EmbeddedBroker,
    url: str,
    start_worker: WorkerFactory,
    lose: Callable[[EmbeddedBroker, str], None],
    workers: int,
) -> None:
    now = datetime.now(UTC)
    messages = sim(300, seed=71, now=now, key_mode="random")
    half = len(messages) // 2
    first, rest = messages[:half], messages[half:]
    before = [start_worker(url) for _ in range(workers)]
    publish_positions(bootstrap(broker), raw(first))
    wait_store(url, expected_of(kinds(first), now), timeout=90, workers=before)
    for worker in before:
        worker.stop()
    lose(broker, url)
    after = [start_worker(url) for _ in range(workers)]
    publish_positions(bootstrap(broker), raw(rest))
    expected = expected_of(kinds(messages), now)
    wait_store(url, expected, timeout=120, workers=after)
    assert_store_equals(url, expected)
    leads_in_both = {m.lead_id for m in first} & {m.lead_id for m in rest}
    assert len(leads_in_both) >= 20, "the test must fold later events onto earlier history"


def test_a_new_empty_broker_mid_stream_leaves_the_store_equal_to_the_fold(
    broker: EmbeddedBroker, database_url: str, start_worker: WorkerFactory
) -> None:
    run_with_a_loss(broker, database_url, start_worker, replace_broker, workers=1)


@pytest.mark.postgres
def test_a_new_empty_broker_with_two_workers(
    broker: EmbeddedBroker, pg_schema_url: str, start_worker: WorkerFactory
) -> None:
    run_with_a_loss(broker, pg_schema_url, start_worker, replace_broker, workers=2)


def test_a_deleted_changelog_leaves_the_store_equal_to_the_fold(
    broker: EmbeddedBroker, database_url: str, start_worker: WorkerFactory
) -> None:
    run_with_a_loss(broker, database_url, start_worker, delete_changelog, workers=1)
