"""After a rebalance, a partition with no commit yet is read again from its beginning."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from leadflow.pipeline.faust.patches.reset_policy import seek_committed_or_reset
from leadflow.pipeline.kafka.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker]


def test_uncommitted_partitions_go_back_to_the_beginning(broker: EmbeddedBroker) -> None:
    bootstrap = f"{broker.host}:{broker.port}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("events", 3, 1), NewTopic("app-changelog", 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for topic, partitions in (("events", 3), ("app-changelog", 1)):
        for partition in range(partitions):
            for i in range(20):
                producer.send(topic, f"{i}".encode(), partition=partition)
    producer.flush()
    producer.close()

    async def scenario() -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id="g",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition("events", p) for p in range(3)]
            tps.append(TopicPartition("app-changelog", 0))
            consumer.assign(tps)
            # Partition 0 committed at 5; the others were fetched (as a worker's buffer
            # cleared by a rebalance would have been) but never committed.
            await consumer.commit({tps[0]: OffsetAndMetadata(5, "")})
            for tp in tps:
                consumer.seek(tp, 20)
            await seek_committed_or_reset(
                consumer, lambda tp: tp.topic.endswith("changelog"), "earliest"
            )
            # Set at once, not awaiting a reset: Faust's livelock check reads it synchronously.
            assignment = consumer._subscription.subscription.assignment
            assert all(assignment.state_value(tp).has_valid_position for tp in tps)
            return {tp: await consumer.position(tp) for tp in tps}
        finally:
            await consumer.stop()

    positions = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert positions == {
        TopicPartition("events", 0): 5,  # its commit
        TopicPartition("events", 1): 0,  # no commit: from the beginning (the cleared messages)
        TopicPartition("events", 2): 0,
        TopicPartition("app-changelog", 0): 20,  # changelogs are left to table recovery
    }
