"""The batch lanes between Faust's fetch loop and the agents: order, size, wait, clear."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from leadflow.pipeline.faust.lanes import Lane, Lanes


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), timeout=10))


def test_batches_keep_order_and_size() -> None:
    async def body() -> list[list[int]]:
        lane = Lane(["t"], maxsize=100)
        for n in range(25):
            lane.put(n)
        batches = lane.batches(10, within=0.01)
        return [await anext(batches) for _ in range(3)]

    assert run(body) == [list(range(10)), list(range(10, 20)), list(range(20, 25))]


def test_a_batch_waits_within_for_more() -> None:
    async def body() -> list[int]:
        lane = Lane(["t"], maxsize=100)
        lane.put(1)

        async def later() -> None:
            await asyncio.sleep(0.05)
            lane.put(2)
            lane.put(3)

        task = asyncio.ensure_future(later())
        batch: list[int] = await anext(lane.batches(10, within=1.0))
        await task
        return batch

    # The first record alone is not a batch yet: the ones fetched within the second join it.
    assert run(body) == [1, 2, 3]


def test_a_full_lane_refuses_until_taken() -> None:
    async def body() -> tuple[list[bool], bool, bool]:
        lane = Lane(["t"], maxsize=3)
        accepted = [lane.put(n) for n in range(3)]
        waiting = asyncio.ensure_future(lane.wait_room())
        await asyncio.sleep(0.01)
        blocked = not waiting.done()
        await anext(lane.batches(2, within=0.0))
        await asyncio.wait_for(waiting, 1)
        return accepted, blocked, waiting.done()

    accepted, blocked, released = run(body)
    assert accepted == [True, True, False]
    assert blocked and released


def test_clear_drops_what_is_buffered() -> None:
    class FlowControl:
        def __init__(self) -> None:
            self.queues: list[Any] = []

        def manage_queue(self, queue: Any) -> None:
            self.queues.append(queue)

        def clear(self) -> None:
            for queue in self.queues:
                queue.clear()

    async def body() -> tuple[int, list[int]]:
        flow = FlowControl()
        lanes = Lanes()
        lane = lanes.add(flow, ["a", "b"], maxsize=10)
        assert lanes.by_topic == {"a": lane, "b": lane}
        for n in range(10):
            lane.put(n)
        flow.clear()  # what Faust does to its queues when partitions are revoked
        dropped = len(lane)
        lane.put(99)
        return dropped, await anext(lane.batches(10, within=0.0))

    assert run(body) == (0, [99])
