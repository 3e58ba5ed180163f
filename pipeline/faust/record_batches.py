"""Send many records at once as Kafka record batches, one per partition, not a future each.

A batch's records for one topic are appended to one aiokafka ``BatchBuilder`` per partition
and handed to the producer whole, with no pending message, future or partitioner call per
record; the caller gets one delivery per record batch, resolved once the broker has it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder

from leadflow.agents.ports import Record

# Kafka's default limit for one record batch is 1 MiB (message.max.bytes); a record larger
# than this still goes, alone in its batch.
MAX_BATCH_BYTES = 512 * 1024


async def send_records(
    producer: Any,
    topic: str,
    records: Sequence[Record],
    max_batch_bytes: int = MAX_BATCH_BYTES,
    codec: int = 0,
) -> list[asyncio.Future[Any]]:
    """Queue ``records`` on the aiokafka ``producer``, in order within each partition.

    ``codec`` is the Kafka codec id of every batch (0: none; 1 gzip, 2 snappy, 3 lz4, 4 zstd).

    Returns the deliveries of the record batches; each fails as a whole if its batch does.
    """
    builders: dict[int, BatchBuilder] = {}
    deliveries: list[asyncio.Future[Any]] = []
    for partition, key, value in records:
        builder = builders.get(partition)
        if builder is None:
            builder = builders[partition] = _builder(max_batch_bytes, codec)
        if builder.append(timestamp=None, key=key, value=value) is None:  # full
            deliveries.append(await _send(producer, builder, topic, partition))
            builder = builders[partition] = _builder(max_batch_bytes, codec)
            builder.append(timestamp=None, key=key, value=value)  # the first always fits
    for partition, builder in builders.items():
        deliveries.append(await _send(producer, builder, topic, partition))
    return deliveries


def _builder(max_batch_bytes: int, codec: int) -> BatchBuilder:
    return BatchBuilder(max_batch_bytes, codec)


async def _send(
    producer: Any, builder: BatchBuilder, topic: str, partition: int
) -> asyncio.Future[Any]:
    builder.close()  # nothing else joins it, and it need not linger
    future: asyncio.Future[Any] = await producer.send_batch(builder, topic, partition=partition)
    return future
