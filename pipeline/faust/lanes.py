"""Batch lanes: the fetch loop hands an agent's records over in batches, not one by one.

Faust delivers every record through its conductor, a channel queue and the stream's
iterator, about 100 microseconds per record here: more than leadflow's own work on it. A
lane is a plain buffer between the fetch loop (``patches.drain``) and an agent's
batch loop. Faust still subscribes, assigns, seeks, commits and rebalances as before: the
lane is registered with the app's flow control, so a rebalance clears what it holds, as it
clears the channel queues, and records are acked only once the store has them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any


class Lane:
    """A bounded buffer of Kafka messages with a batch ``take`` for one agent."""

    def __init__(self, topics: Iterable[str], maxsize: int) -> None:
        self.topics = frozenset(topics)
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Any) -> bool:
        """Add one message; False once the lane is full (the caller waits for room)."""
        self._items.append(message)
        self._ready.set()
        if len(self._items) >= self.maxsize:
            self._room.clear()
            return False
        return True

    async def wait_room(self) -> None:
        await self._room.wait()

    def clear(self) -> None:
        """Drop what is buffered (a rebalance: it will be read again from the commits)."""
        self._items.clear()
        self._ready.clear()
        self._room.set()

    async def batches(self, size: int, within: float) -> AsyncIterator[list[Any]]:
        """Yield batches of up to ``size`` messages, waiting up to ``within`` s to fill one."""
        items = self._items
        while True:
            while not items:
                self._ready.clear()
                await self._ready.wait()
            if len(items) < size:
                # Let the fetch loop add what it already holds before cutting the batch.
                deadline = time.monotonic() + within
                while len(items) < size and (left := deadline - time.monotonic()) > 0:
                    self._ready.clear()
                    try:
                        await asyncio.wait_for(self._ready.wait(), left)
                    except TimeoutError:
                        break
            count = min(size, len(items))
            batch = [items.popleft() for _ in range(count)]
            if len(items) < self.maxsize:
                self._room.set()
            if batch:
                yield batch


class Lanes:
    """The lanes of one app, by topic name; the fetch loop finds them on ``app.lanes``."""

    def __init__(self) -> None:
        self.by_topic: dict[str, Lane] = {}
        self._lanes: list[Lane] = []  # flow control keeps only weak references

    def add(self, flow_control: Any, topics: Iterable[str], maxsize: int) -> Lane:
        lane = Lane(topics, maxsize)
        for topic in lane.topics:
            self.by_topic[topic] = lane
        self._lanes.append(lane)
        flow_control.manage_queue(lane)
        return lane
