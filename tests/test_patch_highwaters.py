"""Table recovery's end offsets: Kafka's listed ends confirmed, Tansu's corrected, in bounded time.

The patched ``AIOKafkaConsumerThread._highwaters`` runs on a stand-in for the consumer thread
(the three attributes it reads) around a real aiokafka consumer on the embedded broker, with
the app's real end probe.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from leadflow.pipeline.faust.patches import highwaters
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.kafka.topics import true_end_offsets
from tests.support.fixtures import settings_for
from tests.support.traffic import bootstrap

pytestmark = [pytest.mark.broker]
TPS = [TP("t", p) for p in range(3)]
TRUE_ENDS = {TPS[0]: 80, TPS[1]: 1, TPS[2]: 0}


class ListedEnds:
    """An aiokafka consumer that lists given end offsets (as Apache Kafka lists them)."""

    def __init__(self, ends: dict[TP, int]) -> None:
        self.ends = ends

    async def end_offsets(self, partitions: list[TP]) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in partitions}


class ThreadStandIn:
    """What the patched ``_highwaters`` reads of an ``AIOKafkaConsumerThread``."""

    def __init__(self, kafka: Any, probe: Any, seconds: float | None = None) -> None:
        self.kafka = kafka
        self.consumer = type("FaustConsumer", (), {"in_transaction": False})()
        self.app = type("App", (), {"end_probe": staticmethod(probe)})()
        if seconds is not None:
            self.app.end_probe_seconds = seconds

    def _ensure_consumer(self) -> Any:
        return self.kafka


def fill(servers: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic("t", 3, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=servers, linger_ms=50)
    # Partition 0: two batches of 40; partition 1: one record; partition 2: nothing.
    for _ in range(2):
        for i in range(40):
            producer.send("t", f"a{i}".encode(), partition=0)
        producer.flush()
    producer.send("t", b"b", partition=1)
    producer.flush()
    producer.close()


async def ends_of(thread: ThreadStandIn) -> dict[TP, int]:
    return dict(await AIOKafkaConsumerThread._highwaters(thread, TPS))  # type: ignore[arg-type]


async def tansu_and_kafka_ends(servers: str, probe: Any) -> tuple[dict[TP, int], ...]:
    kafka = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await kafka.start()
    try:
        listed = {TP(tp.topic, tp.partition): e for tp, e in (await kafka.end_offsets(TPS)).items()}
        tansu = await ends_of(ThreadStandIn(kafka, probe))
        kafka_style = await ends_of(ThreadStandIn(ListedEnds(TRUE_ENDS), probe))
        return listed, tansu, kafka_style
    finally:
        await kafka.stop()


def test_tansu_ends_are_corrected_and_kafka_ends_confirmed(broker: EmbeddedBroker) -> None:
    highwaters.install()
    fill(bootstrap(broker))
    probe = functools.partial(true_end_offsets, settings_for(broker, "sqlite://"))
    listed, tansu, kafka_style = asyncio.run(
        asyncio.wait_for(tansu_and_kafka_ends(bootstrap(broker), probe), 60)
    )
    assert listed[TPS[0]] < TRUE_ENDS[TPS[0]], "Tansu lists the last batch's base offset + 1"
    assert tansu == TRUE_ENDS
    assert kafka_style == TRUE_ENDS


def test_a_probe_that_hangs_is_given_up_within_its_bound() -> None:
    highwaters.install()
    listed = {TPS[0]: 40, TPS[1]: 1, TPS[2]: 0}

    def hanging(ends: dict[TP, int]) -> dict[TP, int]:
        time.sleep(3)
        return {tp: end + 1000 for tp, end in ends.items()}

    started = time.monotonic()
    ends = asyncio.run(ends_of(ThreadStandIn(ListedEnds(listed), hanging, seconds=0.5)))
    took = time.monotonic() - started
    assert ends == listed
    assert took < 2.0, f"the end probe was awaited {took:.1f}s, past its 0.5 s bound"
