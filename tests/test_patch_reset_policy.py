"""After a rebalance, a partition without a commit starts where the reset policy says.

The patched ``AIOKafkaConsumerThread.seek_to_committed`` runs on a stand-in for the
consumer thread (the four attributes it reads) around a real aiokafka consumer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from leadflow.pipeline.faust.patches import reset_policy
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from tests.support.traffic import bootstrap

pytestmark = [pytest.mark.broker]
RECORDS = 20


class ThreadStandIn:
    """What the patched ``seek_to_committed`` reads of an ``AIOKafkaConsumerThread``."""

    def __init__(self, kafka: AIOKafkaConsumer, policy: str) -> None:
        self.kafka = kafka
        self.app = faust.App("reset-tests", consumer_auto_offset_reset=policy)
        self.consumer = self  # Faust's consumer: only its changelog test is read

    def _ensure_consumer(self) -> AIOKafkaConsumer:
        return self.kafka

    def _is_changelog_tp(self, tp: Any) -> bool:
        return bool(tp.topic.endswith("changelog"))

    async def call_thread(self, method: Any) -> Any:
        return await method()

    async def _seek_to_committed_or_reset(self) -> Any:
        return await AIOKafkaConsumerThread._seek_to_committed_or_reset(self)  # type: ignore[attr-defined]


def fill(servers: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic("events", 3, 1), NewTopic("app-changelog", 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=servers)
    for topic, partitions in (("events", 3), ("app-changelog", 1)):
        for partition in range(partitions):
            for i in range(RECORDS):
                # One batch per record: Tansu lists a partition's end as the base offset of
                # its last batch plus one, right only when that batch holds one record.
                producer.send(topic, f"{i}".encode(), partition=partition)
                producer.flush()
    producer.close()


async def positions_after_seek(servers: str, policy: str) -> dict[TopicPartition, int]:
    kafka = AIOKafkaConsumer(bootstrap_servers=servers, group_id="g", enable_auto_commit=False)
    await kafka.start()
    try:
        tps = [TopicPartition("events", p) for p in range(3)]
        tps.append(TopicPartition("app-changelog", 0))
        kafka.assign(tps)
        # Partition 0 committed at 5; the others fetched to 7 (a buffer a rebalance cleared).
        await kafka.commit({tps[0]: OffsetAndMetadata(5, "")})
        for tp in tps:
            kafka.seek(tp, 7)
        await AIOKafkaConsumerThread.seek_to_committed(ThreadStandIn(kafka, policy))  # type: ignore[arg-type]
        assignment = kafka._subscription.subscription.assignment
        assert all(assignment.state_value(tp).has_valid_position for tp in tps)
        return {tp: await kafka.position(tp) for tp in tps}
    finally:
        await kafka.stop()


@pytest.mark.parametrize("policy, start", [("earliest", 0), ("latest", RECORDS)])
def test_uncommitted_partitions_follow_the_reset_policy(
    broker: EmbeddedBroker, policy: str, start: int
) -> None:
    reset_policy.install()
    fill(bootstrap(broker))
    positions = asyncio.run(asyncio.wait_for(positions_after_seek(bootstrap(broker), policy), 30))
    assert positions == {
        TopicPartition("events", 0): 5,  # its commit
        TopicPartition("events", 1): start,  # no commit: where the policy says
        TopicPartition("events", 2): start,
        TopicPartition("app-changelog", 0): 7,  # changelogs are left to table recovery
    }
