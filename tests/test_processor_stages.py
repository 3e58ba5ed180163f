"""The processor's two write stages: store and emit overlap, order holds, a failure stops both."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any

import pytest

from leadflow.agents.fold import FoldConfig
from leadflow.agents.metrics import Metrics
from leadflow.agents.partitioning import partition_of
from leadflow.agents.processor import Incoming, LeadProcessor
from leadflow.pipeline.settings import Settings
from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.errors import PermanentStoreError
from leadflow.schemas.records import LeadSnapshot

PARTITIONS = 4
NAMES = Settings().topic_names()


class Sink:
    """Records each write; the batch numbered ``fail_at`` raises a permanent error."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.writes: list[list[str]] = []
        self.events: list[str] = []

    def write_batch(
        self, snapshots: Sequence[LeadSnapshot], dead_letters: Sequence[DeadLetter], now: datetime
    ) -> int:
        number = len(self.writes)
        self.writes.append([s.lead_id for s in snapshots])
        self.events.append(f"store {number}")
        if number == self.fail_at:
            raise PermanentStoreError("the table is gone")
        return len(snapshots)

    def close(self) -> None:
        pass


def created(lead_id: str) -> Incoming:
    value = (
        f'{{"event_id":"{lead_id}-c","event_type":"lead.created","lead_id":"{lead_id}",'
        '"occurred_at":"2026-05-01T10:00:00Z","source":"web"}'
    ).encode()
    return Incoming(NAMES.marketing, partition_of(lead_id, PARTITIONS), 0, value)


def processor(sink: Sink, send: Any) -> LeadProcessor:
    return LeadProcessor(
        names=NAMES,
        partitions=PARTITIONS,
        partition_counts={NAMES.marketing: PARTITIONS, NAMES.sales: PARTITIONS},
        config=FoldConfig(86_400.0, frozenset()),
        table={},
        sink=sink,
        send=send,
        metrics=Metrics.create(),
    )


def run(body: Any) -> Any:
    return asyncio.run(asyncio.wait_for(body(), timeout=20))


def test_the_next_batch_is_stored_while_the_one_before_is_emitted() -> None:
    sink = Sink()

    async def body() -> list[str]:
        gate = asyncio.Event()

        async def send(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
            if topic == NAMES.lifecycle and key == b"A":
                sink.events.append("emit A waits")
                await gate.wait()  # the broker is slow for batch 0
            sink.events.append(f"emit {key!r}")
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        lead = processor(sink, send)
        first = await lead.handle_input([created("A")])
        second = await lead.handle_input([created("B")])
        while "store 1" not in sink.events:
            await asyncio.sleep(0.01)
        gate.set()
        await first
        await second
        lead.close()
        return sink.events

    events = run(body)
    # Batch 1 reached the store before batch 0's snapshot was out; each emit after its store.
    assert events.index("store 1") < events.index("emit b'A'")
    assert events.index("store 0") < events.index("emit A waits")
    assert events.index("emit b'A'") < events.index("emit b'B'")


def test_a_failed_store_write_fails_that_batch_and_every_later_one() -> None:
    sink = Sink(fail_at=1)
    emitted: list[bytes | None] = []

    async def body() -> list[BaseException | None]:
        async def send(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
            if topic == NAMES.lifecycle:
                emitted.append(key)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        lead = processor(sink, send)
        jobs = [await lead.handle_input([created(name)]) for name in ("A", "B", "C")]
        outcomes: list[BaseException | None] = []
        for job in jobs:
            try:
                await job
                outcomes.append(None)
            except PermanentStoreError as exc:
                outcomes.append(exc)
        lead.close()
        return outcomes

    first, second, third = run(body)
    assert first is None
    assert isinstance(second, PermanentStoreError) and third is second
    assert sink.writes == [["A"], ["B"]]  # nothing written past the failed batch
    assert emitted == [b"A"]  # and nothing emitted for it or after it


def test_a_failed_emit_stops_the_later_batches_too() -> None:
    sink = Sink()

    async def body() -> list[str]:
        async def send(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
            if key == b"A":
                raise RuntimeError("the producer is closed")
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        lead = processor(sink, send)
        jobs = [await lead.handle_input([created(name)]) for name in ("A", "B")]
        failures = []
        for job in jobs:
            with pytest.raises(RuntimeError) as caught:
                await job
            failures.append(str(caught.value))
        lead.close()
        return failures

    assert run(body) == ["the producer is closed", "the producer is closed"]
