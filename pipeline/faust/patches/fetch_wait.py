"""The consumer's fetch requests wait on the broker at most the configured time.

Written for faust-streaming 0.15.3 and aiokafka 0.14.0. faust-streaming hard-codes
``fetch_max_wait_ms=1500`` in ``AIOKafkaConsumerThread._create_worker_consumer``: a fetch
that finds nothing new waits that long on the broker before answering, so at a steady
trickle of events that wait, not the work, sets the latency from publish to store. The
patched method sets aiokafka's ``AIOKafkaConsumer._fetch_max_wait_ms`` (read when the
consumer starts) to ``fetch_max_wait_ms`` from the settings.
"""

from __future__ import annotations

from typing import Any

from leadflow.pipeline.faust.patches.pins import require

WRITTEN_FOR = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}
_installed = False


def install(max_wait_ms: int) -> None:
    """Cap the fetch wait of every worker consumer created from now on (once per process)."""
    global _installed
    require("fetch wait", WRITTEN_FOR)
    from faust.transport.drivers import aiokafka as driver

    if _installed:
        return
    original = driver.AIOKafkaConsumerThread._create_worker_consumer

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    driver.AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]
    _installed = True
