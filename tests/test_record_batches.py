"""Record batches reach the broker whole: each record on its partition, in order, intact."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition

from leadflow.pipeline.faust.record_batches import Record, send_records
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from tests.support.traffic import bootstrap

pytestmark = [pytest.mark.broker]
TOPIC = "batches"


def produce(broker: EmbeddedBroker, records: list[Record], max_batch_bytes: int) -> int:
    """Send ``records`` in one call; the number of record batches it made."""

    async def body() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap(broker))
        await producer.start()
        try:
            await producer.partitions_for(TOPIC)
            deliveries = await send_records(producer, TOPIC, records, max_batch_bytes)
            await asyncio.gather(*deliveries)
            return len(deliveries)
        finally:
            await producer.stop()

    return asyncio.run(asyncio.wait_for(body(), timeout=30))


def consume(broker: EmbeddedBroker, partitions: int) -> list[Record]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap(broker),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    consumer.assign([TopicPartition(TOPIC, p) for p in range(partitions)])
    records = [(r.partition, r.key, r.value) for r in consumer]
    consumer.close()
    return records


def test_records_land_on_their_partitions_in_order_across_full_batches(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap(broker))
    admin.create_topics([NewTopic(TOPIC, 3, 1)])
    admin.close()
    big = b"x" * 5_000  # larger than a whole batch: it goes alone
    records: list[Record] = [(i % 3, f"k{i}".encode(), f"v{i}".encode() * 20) for i in range(300)]
    records.insert(150, (1, b"big", big))
    records.append((2, None, b"no key"))

    batches = produce(broker, records, max_batch_bytes=2_000)

    got = consume(broker, 3)
    for partition in range(3):
        sent = [r for r in records if r[0] == partition]
        assert [r for r in got if r[0] == partition] == sent
    # Split where a batch was full: about 7,000 bytes on each partition, 2,000 a batch.
    assert batches >= 3 * 4
