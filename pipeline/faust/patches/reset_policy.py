"""After a rebalance, partitions without a committed offset follow the reset policy.

Written for faust-streaming 0.15.3 and aiokafka 0.14.0. In a rebalance Faust clears the
agents' buffers and then seeks every partition to its committed offset through aiokafka's
``AIOKafkaConsumer.seek_to_committed``, which leaves a partition without a commit (or with
offset 0) where its fetch position is: after the cleared records, which are then never
processed. The patched ``AIOKafkaConsumerThread.seek_to_committed`` moves each such
partition, changelogs excepted (table recovery positions those), to where
``consumer_auto_offset_reset`` says a partition without a commit starts: its first offset
for ``earliest``, its end for ``latest``; any other policy leaves it to aiokafka. The seek
is an explicit offset, so the position is valid at once (Faust's livelock check reads it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from leadflow.pipeline.faust.patches.pins import require

WRITTEN_FOR = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}
_installed = False


def install() -> None:
    """Replace the consumer thread's ``seek_to_committed`` (once per process)."""
    global _installed
    require("reset policy", WRITTEN_FOR)
    from faust.transport.drivers import aiokafka as driver

    if _installed:
        return

    async def seek_to_committed(self: Any) -> Any:
        return await self.call_thread(self._seek_to_committed_or_reset)

    async def seek_or_reset(self: Any) -> Any:
        return await seek_committed_or_reset(
            self._ensure_consumer(),
            self.consumer._is_changelog_tp,
            self.app.conf.consumer_auto_offset_reset,
        )

    driver.AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    driver.AIOKafkaConsumerThread._seek_to_committed_or_reset = seek_or_reset  # type: ignore[attr-defined]
    _installed = True


async def seek_committed_or_reset(consumer: Any, skip: Callable[[Any], bool], policy: str) -> Any:
    """Seek an aiokafka consumer's partitions to their commits, the others by ``policy``.

    Partitions for which ``skip`` is true (the changelogs) stay where they are. Returns
    what aiokafka's ``seek_to_committed`` returns: each partition's committed offset.
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
    starts = await _starts(consumer, unset, policy)
    for tp, offset in starts.items():
        with contextlib.suppress(IllegalStateError):  # revoked meanwhile: not ours now
            consumer.seek(tp, offset)
    return committed


async def _starts(consumer: Any, unset: list[Any], policy: str) -> dict[Any, int]:
    """Where partitions without a commit start under ``policy`` (none for other policies)."""
    if not unset:
        return {}
    if policy == "earliest":
        return dict(await consumer.beginning_offsets(unset))
    if policy == "latest":
        return dict(await consumer.end_offsets(unset))
    return {}
