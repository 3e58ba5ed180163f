"""The processor's two write stages: store and emit overlap, order holds, a failure stops both."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from leadflow.schemas.errors import PermanentStoreError
from tests.support.processors import NAMES, Sink, created, processor, run


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
