"""Faust's Prometheus monitor with its per-message counts published at each scrape.

Written for faust-streaming 0.15.3. Faust's ``PrometheusMonitor`` updates its Prometheus
metrics for every message read: ``on_message_in`` (two counters, a labelled counter and a
labelled gauge), ``track_tp_end_offset`` (a labelled gauge) and ``on_message_out`` (a gauge),
several microseconds a message, more than leadflow's fold of it. ``BatchMonitor`` keeps those
counts in plain dicts and moves them into the same metrics (``PrometheusMonitor._metrics``) and
the same ``Monitor`` fields whenever a scrape reads the registry and at each of the monitor's
one-second samples (``publish``, called by ``Monitor._sample``): every scrape shows the values
Faust's monitor would show, and its messages per second are Faust's. A message's ``time_in``,
``time_out`` and ``time_total``, which no metric reads, stay unset. Every other sensor method
is Faust's own.
"""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry, generate_latest

from leadflow.pipeline.faust.patches.pins import require

WRITTEN_FOR = {"faust-streaming": "0.15.3"}
# aiohttp refuses a charset inside content_type; the exposition format is UTF-8 anyway.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"


class BatchMonitor(PrometheusMonitor):
    """A ``PrometheusMonitor`` whose per-message metrics wait for ``publish``."""

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics=metrics, **kwargs)
        self._received: dict[Any, int] = {}  # messages in since the last publish, by tp
        self._read: dict[Any, int] = {}  # the last offset read, by tp
        self._ends: dict[Any, int] = {}  # end offsets tracked since the last publish
        self._out = 0  # messages out since the last publish

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        received = self._received
        received[tp] = received.get(tp, 0) + 1
        self._read[tp] = offset

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        self._out += 1

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        self._ends[tp] = offset

    def _sample(self, prev_event_total: int, prev_message_total: int) -> tuple[int, int]:
        self.publish()
        totals: tuple[int, int] = super()._sample(prev_event_total, prev_message_total)
        return totals

    def publish(self) -> None:
        """Move the counts kept since the last call into the metrics and Monitor fields."""
        received, read, ends, out = self._received, self._read, self._ends, self._out
        self._received, self._read, self._ends, self._out = {}, {}, {}, 0
        metrics = self._metrics
        total = sum(received.values())
        self.messages_received_total += total
        self.messages_active += total - out
        metrics.messages_received.inc(total)
        metrics.active_messages.inc(total - out)
        for tp, count in received.items():
            self.messages_received_by_topic[tp.topic] += count
            metrics.messages_received_per_topics.labels(topic=tp.topic).inc(count)
        for tp, offset in read.items():
            self.tp_read_offsets[tp] = offset
            metrics.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            ).set(offset)
        for tp, offset in ends.items():
            self.tp_end_offsets[tp] = offset
            metrics.topic_partition_end_offset.labels(topic=tp.topic, partition=tp.partition).set(
                offset
            )


def setup(app: Any, *, registry: CollectorRegistry, pattern: str, name_prefix: str) -> BatchMonitor:
    """Faust's ``setup_prometheus_sensors`` with a ``BatchMonitor``; its page publishes first."""
    require("batch monitor", WRITTEN_FOR)
    monitor = BatchMonitor(metrics=FaustMetrics.create(registry, name_prefix))
    app.monitor = monitor

    @app.page(pattern)  # type: ignore[untyped-decorator]
    async def faust_metrics(web: Any, request: Any) -> Any:
        monitor.publish()
        return web.bytes(generate_latest(registry), content_type=METRICS_CONTENT_TYPE)

    return monitor
