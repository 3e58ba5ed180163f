"""Knobs faust-streaming does not expose, set once per process, each with its reason."""

from __future__ import annotations

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
