"""Each lead's state and snapshots land on its lead's partition, keyed by the lead id."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from leadflow.agents.partitioning import partition_of
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from tests.support.faults import expected_of, publish_positions, wait_store
from tests.support.fixtures import WorkerFactory
from tests.support.traffic import bootstrap, kinds, raw, sim

pytestmark = [pytest.mark.broker]


def test_changelog_records_sit_on_their_leads_partitions(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    messages = sim(120, seed=61, now=now)
    expected = expected_of(kinds(messages), now)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    worker = start_worker(url)
    publish_positions(bootstrap(broker), raw(messages))
    wait_store(url, expected, timeout=60, workers=[worker])

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap(broker),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    consumer.assign([TopicPartition("leadflow-leads-changelog", p) for p in range(8)])
    records = [(r.partition, r.key) for r in consumer]
    consumer.assign([TopicPartition("lead-lifecycle", p) for p in range(8)])
    consumer.seek_to_beginning()
    snapshots = [(r.partition, r.key) for r in consumer]
    consumer.close()

    assert records, "the changelog is empty"
    keys = {key for _, key in records}
    # Keys are the lead ids' bytes (a worker recovering reads them back as the leads).
    assert keys == {lead.encode() for lead in expected.leads}
    misplaced = [(p, k) for p, k in records if p != partition_of(k.decode(), 8)]
    assert not misplaced, f"{len(misplaced)} of {len(records)} records off their lead's partition"

    # The lifecycle topic: Kafka's default partitioner on the lead id, as any producer would.
    assert {key for _, key in snapshots} == keys
    misplaced = [(p, k) for p, k in snapshots if p != partition_of(k.decode(), 8)]
    assert not misplaced, f"{len(misplaced)} of {len(snapshots)} snapshots off their partition"
