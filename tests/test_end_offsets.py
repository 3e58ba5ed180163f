"""Table recovery reads each changelog partition to its true end, whatever the broker lists."""

from __future__ import annotations

import pytest
from faust.types import TP
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.kafka.topics import true_end_offsets
from tests.support.fixtures import settings_for

pytestmark = [pytest.mark.broker]


def test_true_end_offsets_count_every_record_of_the_last_batch(broker: EmbeddedBroker) -> None:
    bootstrap = f"{broker.host}:{broker.port}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("t", 3, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    # Partition 0: two batches of 40; partition 1: one record; partition 2: nothing.
    for _ in range(2):
        for i in range(40):
            producer.send("t", f"a{i}".encode(), partition=0)
        producer.flush()
    producer.send("t", b"b", partition=1)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    listed = consumer.end_offsets([TopicPartition("t", p) for p in range(3)])
    consumer.close()
    ends = {TP("t", tp.partition): end for tp, end in listed.items()}

    settings = settings_for(broker, "sqlite://")
    assert true_end_offsets(settings, ends) == {TP("t", 0): 80, TP("t", 1): 1, TP("t", 2): 0}
