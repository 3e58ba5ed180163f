"""Faust's fetch loop, which delivers no record fetched before or during a seek.

Written for faust-streaming 0.15.3 and mode-streaming 0.7.1: the loop is
``faust.transport.consumer.Consumer._drain_messages`` of faust-streaming 0.15.3
(BSD-3-Clause) with a seek check added, and ``Consumer.perform_seek`` is wrapped to keep
the seek bookkeeping.

After a rebalance Faust seeks every partition back to its committed offset, but a fetch
begun before or while a seek runs can return records from the old position after it.
Faust's loop delivers them: a record past the read offset looks like a gap, whose offsets
Faust marks acknowledged (the next commit passes them) and whose records, read again after
the seek, it drops as older than the last one read. Here a ``SeekGuard`` counts the seeks
in flight and numbers every seek begun; records of an acking topic are delivered only if
no seek was in flight when their fetch began and none has begun since. Records that fail
that check are set aside and the loop seeks to the commits once more, so they are read
again in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from leadflow.pipeline.faust.patches.pins import require

WRITTEN_FOR = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1"}
YIELD_EVERY = 100  # records delivered between two yields to the event loop
_installed = False


class SeekGuard:
    """Seeks in flight and the number of seeks begun, on one consumer."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.generation = 0

    def ticket(self) -> int | None:
        """Taken before a fetch: the generation, or None while a seek is in flight."""
        return None if self.in_flight else self.generation

    def clean(self, ticket: int | None) -> bool:
        """True if no seek was in flight at ``ticket`` and none has begun since."""
        return ticket is not None and not self.in_flight and self.generation == ticket

    def begin_seek(self) -> None:
        self.in_flight += 1
        self.generation += 1

    def end_seek(self) -> None:
        self.in_flight -= 1

    @contextlib.asynccontextmanager
    async def seeking(self) -> AsyncIterator[None]:
        """Held while a seek runs, whether it completes or raises."""
        self.begin_seek()
        try:
            yield
        finally:
            self.end_seek()


def guard_of(consumer: Any) -> SeekGuard:
    """The consumer's seek guard, created on first use."""
    guard: SeekGuard | None = getattr(consumer, "_leadflow_seek_guard", None)
    if guard is None:
        guard = consumer._leadflow_seek_guard = SeekGuard()
    return guard


def install() -> None:
    """Replace the consumer's fetch loop and guard its seeks (once per process)."""
    global _installed
    require("fetch loop", WRITTEN_FOR)
    from faust.transport.consumer import Consumer

    if _installed:
        return
    original_seek = Consumer.perform_seek

    async def perform_seek(self: Any) -> None:
        async with guard_of(self).seeking():
            await original_seek(self)

    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._drain_messages = drain_messages  # type: ignore[method-assign]
    _installed = True


async def drain_messages(self: Any, fetcher: Any) -> None:
    """Fetch and deliver records until the consumer or the fetcher stops."""
    from faust.transport.consumer import CONSUMER_FETCHING

    try:
        await _fetch_until_stopped(self, fetcher)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        self.diag.unset_flag(CONSUMER_FETCHING)


async def _fetch_until_stopped(self: Any, fetcher: Any) -> None:
    from faust.transport.consumer import CONSUMER_FETCHING

    guard = guard_of(self)
    deliver = _Delivery(self)
    while not (self._stopped.is_set() or fetcher._stopped.is_set()):
        self.diag.set_flag(CONSUMER_FETCHING)
        ticket = guard.ticket()
        records = self.getmany(timeout=1.0)
        await self.sleep(0)
        set_aside = 0
        if not self.should_stop:
            async for tp, message in records:
                set_aside += await deliver(tp, message, guard.clean(ticket))
            self.diag.unset_flag(CONSUMER_FETCHING)
        if set_aside:
            await _seek_again(self, set_aside)


async def _seek_again(self: Any, set_aside: int) -> None:
    self.log.info(
        "%d records fetched before a seek set aside; seeking to the committed offsets "
        "to read them again",
        set_aside,
    )
    try:
        await self.perform_seek()
    except Exception as exc:  # no assignment: the rebalance seeks anyway
        self.log.warning("seek after setting records aside failed: %r", exc)


class _Delivery:
    """Faust's per-record step of the loop: gaps, commits, and the hand-over to a stream."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        lanes = getattr(consumer.app, "lanes", None)
        self.by_topic = lanes.by_topic if lanes is not None else {}
        self.since_yield = 0

    async def __call__(self, tp: Any, message: Any, clean: bool) -> int:
        """Deliver one record; 1 if it is set aside (an acking topic and not ``clean``)."""
        c = self.consumer
        self.since_yield += 1
        if self.since_yield > YIELD_EVERY:
            await asyncio.sleep(0)
            self.since_yield = 0
        acks_enabled = c.app.topics.acks_enabled_for(message.topic)
        if acks_enabled and not clean:
            return 1
        offset = message.offset
        r_offset = c._read_offset[tp]
        if r_offset is not None and offset < r_offset:
            c.log.dev("DROPPED MESSAGE ROFF %r", offset)
            return 0
        gap = offset - (r_offset or 0)
        if gap > 1 and r_offset and acks_enabled:
            await c._add_gap(tp, r_offset + 1, offset)
        if c._commit_every is not None and c._n_acked >= c._commit_every:
            c._n_acked = 0
            await c.commit()
        await self._hand_over(tp, offset, message)
        c._read_offset[tp] = offset
        return 0

    async def _hand_over(self, tp: Any, offset: int, message: Any) -> None:
        c = self.consumer
        lane = self.by_topic.get(message.topic)
        if lane is None:
            await c.wait_first(c.callback(message), c.suspend_flow.wait())
        elif not c.suspend_flow.is_set():
            c._on_message_in(tp, offset, message)
            if not lane.put(message):  # full: wait, unless a rebalance
                await c.wait_first(lane.wait_room(), c.suspend_flow.wait())
