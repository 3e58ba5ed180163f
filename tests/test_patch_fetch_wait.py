"""The worker consumer's fetch requests wait on the broker at most the configured time."""

from __future__ import annotations

import asyncio
import time

import faust
import pytest
from aiokafka import TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from leadflow.pipeline.faust.patches import fetch_wait
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from tests.support.traffic import bootstrap

pytestmark = [pytest.mark.broker]
CAP_MS = 50


async def empty_fetch_rounds(servers: str, seconds: float) -> tuple[int, int]:
    """The consumer's fetch wait and the fetch requests sent in ``seconds`` to an empty topic."""
    app = faust.App("fetch-wait-tests", broker=f"kafka://{servers}")
    thread = app.consumer._thread
    kafka = thread._create_worker_consumer(app.transport)
    await kafka.start()
    try:
        kafka.assign([TopicPartition("empty", 0)])
        fetcher = kafka._fetcher
        sent = 0
        original = fetcher._proc_fetch_request

        async def counted(*args: object) -> object:
            nonlocal sent
            sent += 1
            return await original(*args)

        fetcher._proc_fetch_request = counted
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await kafka.getmany(timeout_ms=100)
        return fetcher._fetch_max_wait_ms, sent
    finally:
        await kafka.stop()


def test_the_fetch_wait_is_capped(broker: EmbeddedBroker) -> None:
    fetch_wait.install(CAP_MS)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(broker))
    admin.create_topics([NewTopic("empty", 1, 1)])
    admin.close()
    wait_ms, sent = asyncio.run(asyncio.wait_for(empty_fetch_rounds(bootstrap(broker), 3.0), 30))
    assert wait_ms == CAP_MS
    # Faust's own 1500 ms would allow at most 2 fetches in 3 s.
    assert sent >= 5, f"{sent} fetch requests in 3 s"
