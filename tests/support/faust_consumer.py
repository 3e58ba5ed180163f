"""Faust's own Consumer class on a real aiokafka consumer, with seeks the test holds open.

``GatedConsumer`` is faust-streaming's ``Consumer`` (its fetch loop, ``perform_seek``, gap and
ack bookkeeping all real). Its fetches and seeks go to a real ``AIOKafkaConsumer`` on the
embedded broker; each seek waits on ``gate`` before it reaches the broker, so a test decides
when a seek is in flight and when it completes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP
from faust.transport.consumer import Consumer
from faust.types import TP, Message

TOPIC = "events"


class GatedConsumer(Consumer):  # type: ignore[misc]
    """A faust Consumer whose seeks wait on ``gate`` and whose fetches count themselves."""

    def __init__(self, app: faust.App, kafka: AIOKafkaConsumer, on_message: Any) -> None:
        self.kafka = kafka
        self.gate = asyncio.Event()
        self.seeks_entered = 0
        self.fetches = 0
        self.fetch_started = asyncio.Event()
        self.release_fetch = asyncio.Event()
        self.release_fetch.set()
        super().__init__(
            app.transport,
            callback=on_message,
            on_partitions_revoked=lambda *_: None,
            on_partitions_assigned=lambda *_: None,
        )

    async def seek_to_committed(self) -> Mapping[TP, int]:
        self.seeks_entered += 1
        await self.gate.wait()
        committed = await self.kafka.seek_to_committed()
        return {TP(tp.topic, tp.partition): offset for tp, offset in committed.items()}

    def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        return self._fetch(timeout)

    async def _fetch(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        self.fetches += 1
        records = await self.kafka.getmany(timeout_ms=int(timeout * 1000))
        self.fetch_started.set()
        await self.release_fetch.wait()
        for ktp, batch in records.items():
            tp = TP(ktp.topic, ktp.partition)
            for r in batch:
                yield tp, to_message(tp, r)

    # The abstract methods the fetch loop never calls.
    def assignment(self) -> set[TP]:
        return {TP(tp.topic, tp.partition) for tp in self.kafka.assignment()}

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        return True

    async def _seek(self, partition: TP, offset: int) -> None:
        self.kafka.seek(KafkaTP(partition.topic, partition.partition), offset)

    def _new_topicpartition(self, topic: str, partition: int) -> TP:
        return TP(topic, partition)

    async def _getmany(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _to_message(self, tp: TP, record: Any) -> Any:
        return to_message(tp, record)

    async def create_topic(self, *args: Any, **kwargs: Any) -> None: ...
    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]:
        return {}

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        return {}

    def highwater(self, tp: TP) -> int:
        return 0

    async def position(self, tp: TP) -> int | None:
        return None

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None: ...
    async def subscribe(self, topics: Any) -> None: ...
    async def seek_to_beginning(self, *partitions: Any) -> None: ...
    def topic_partitions(self, topic: str) -> int | None:
        return None

    def key_partition(self, *args: Any, **kwargs: Any) -> Any:
        return None

    def close(self) -> None: ...


def to_message(tp: TP, record: Any) -> Message:
    return Message(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp / 1000.0,
        record.timestamp_type,
        record.headers,
        record.key,
        record.value,
        None,
        tp=tp,
    )


def acking_app(bootstrap: str) -> faust.App:
    """A Faust app (never started) for which ``TOPIC`` is an acking topic."""
    app = faust.App("patch-tests", broker=f"kafka://{bootstrap}")
    app.topics._acking_topics.add(TOPIC)
    return app


class Fetcher:
    """What the fetch loop needs of Faust's Fetcher service: its stop flag."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()
