"""Knobs faust-streaming does not expose, set once per process, each with its reason."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

_patched = False


def cap_fetch_wait(max_wait_ms: int) -> None:
    """Let the consumer's fetch requests wait at most ``max_wait_ms`` (Faust hard-codes 1500).

    A fetch that finds nothing new waits that long on the broker before answering; at a steady
    trickle of events this wait, not the work, decides the latency from publish to store.
    """
    global _patched
    from faust.transport.drivers import aiokafka as driver

    if _patched:
        return
    original = driver.AIOKafkaConsumerThread._create_worker_consumer

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    driver.AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]
    _patched = True


# The true end offsets of some partitions, given the ends the broker reported.
EndProbe = Callable[[dict[Any, int]], dict[Any, int]]
_probe_patched = False


def correct_highwaters() -> None:
    """Make table recovery read each changelog partition to its true end.

    Faust recovers a table by reading its changelog up to the end offsets the broker lists.
    Tansu (the embedded broker) lists the base offset of the last record batch plus one, not
    the last offset plus one, so recovery stopped short of the records after the first one
    in each partition's last batch: a worker taking over partitions folded new events onto
    stale state and lost events. The app's ``end_probe`` (see pipeline/topics.py) fetches
    the last batch to find the true end; on Apache Kafka it confirms the listed offset.
    """
    global _probe_patched
    from faust.transport.drivers import aiokafka as driver

    if _probe_patched:
        return
    original = driver.AIOKafkaConsumerThread._highwaters

    async def highwaters(self: Any, partitions: Any) -> Any:
        ends = dict(await original(self, partitions))
        probe: EndProbe | None = getattr(self.app, "end_probe", None)
        if probe is None or not any(ends.values()):
            return ends
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, probe, ends)

    driver.AIOKafkaConsumerThread._highwaters = highwaters  # type: ignore[method-assign]
    _probe_patched = True


_seek_patched = False


def seek_uncommitted_to_beginning() -> None:
    """After a rebalance, read partitions that have no committed offset from their beginning.

    Faust clears the agents' buffers in a rebalance and then seeks every partition to its
    committed offset, but aiokafka's ``seek_to_committed`` skips partitions without one (or
    with offset 0): their fetch position stayed after the cleared messages, which were never
    processed, and the first commit then jumped over them. This happened when a rebalance
    came before a partition's first commit (a worker joining or dying early in a run). The
    app reads from the earliest offset (``consumer_auto_offset_reset``), so that is where
    such partitions go back to.
    """
    global _seek_patched
    from faust.transport.drivers import aiokafka as driver

    if _seek_patched:
        return

    async def seek_to_committed(self: Any) -> Any:
        return await self.call_thread(self._seek_to_committed_or_beginning)

    async def seek_or_beginning(self: Any) -> Any:
        return await seek_committed_or_beginning(
            self._ensure_consumer(), self.consumer._is_changelog_tp
        )

    driver.AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    driver.AIOKafkaConsumerThread._seek_to_committed_or_beginning = seek_or_beginning  # type: ignore[attr-defined]
    _seek_patched = True


async def seek_committed_or_beginning(consumer: Any, skip: Callable[[Any], bool]) -> Any:
    """Seek an aiokafka consumer's partitions to their commits, or to the beginning if none.

    Partitions for which ``skip`` is true (the changelogs) are left where they are.
    """
    from aiokafka import TopicPartition
    from aiokafka.errors import IllegalStateError

    committed = await consumer.seek_to_committed()
    assigned = consumer.assignment()  # a rebalance may have begun meanwhile
    unset = [
        TopicPartition(tp.topic, tp.partition)
        for tp, offset in committed.items()
        if not offset and not skip(tp) and tp in assigned
    ]
    if unset:
        # An explicit position, not seek_to_beginning: that leaves the position unset until
        # a reset completes, and Faust's livelock check crashes on an unset position.
        for tp, offset in (await consumer.beginning_offsets(unset)).items():
            with contextlib.suppress(IllegalStateError):  # revoked meanwhile: not ours now
                consumer.seek(tp, offset)
    return committed
