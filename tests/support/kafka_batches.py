"""Reading the codec of every record batch in a topic, for the codec tests."""

from __future__ import annotations

import asyncio
import time

from leadflow.pipeline.faust.patches import undecodable as decoding


def batch_codecs(servers: str, topic: str, timeout: float = 20.0) -> set[int]:
    """The codec id of every record batch in ``topic``, read from the beginning."""
    seen: set[int] = set()
    decoding.install()
    original = decoding.GuardedRecords.next_batch

    def spy(self: decoding.GuardedRecords) -> decoding.GuardedBatch | None:
        batch = original(self)
        if batch is not None:
            seen.add(int(batch.compression_type))
        return batch

    decoding.GuardedRecords.next_batch = spy  # type: ignore[method-assign]
    try:
        asyncio.run(_read_all(servers, topic, timeout))
    finally:
        decoding.GuardedRecords.next_batch = original  # type: ignore[method-assign]
    return seen


async def _read_all(servers: str, topic: str, timeout: float) -> int:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    count = idle = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and idle < 2:
            fetched = await consumer.getmany(timeout_ms=500)
            got = sum(len(records) for records in fetched.values())
            count += got
            idle = idle + 1 if got == 0 and count else 0
    finally:
        await consumer.stop()
    return count
