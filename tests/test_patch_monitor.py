"""The batch monitor's scrape shows what Faust's Prometheus monitor shows for the same calls."""

from __future__ import annotations

from typing import Any

import pytest
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from leadflow.pipeline.faust.patches import monitor as batch_monitor
from leadflow.pipeline.faust.patches import pins


class Message:
    time_in: float | None = None
    time_out: float | None = None
    time_total: float | None = None


def _drive(monitor: PrometheusMonitor, rounds: int) -> None:
    tps = [TP("marketing-leads", 0), TP("marketing-leads", 3), TP("sales-outcomes", 1)]
    offset = 0
    for round_ in range(rounds):
        for i in range(50):
            tp = tps[(i * 7 + round_) % len(tps)]
            offset += 1
            monitor.track_tp_end_offset(tp, offset + 100)
            message = Message()
            monitor.on_message_in(tp, offset, message)  # type: ignore[arg-type]
            if i % 3:
                monitor.on_message_out(tp, offset, message)  # type: ignore[arg-type]


def _scrape(registry: CollectorRegistry) -> list[str]:
    return sorted(
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    )


def _fields(monitor: PrometheusMonitor) -> dict[str, Any]:
    return {
        "received": monitor.messages_received_total,
        "active": monitor.messages_active,
        "by_topic": dict(monitor.messages_received_by_topic),
        "read": dict(monitor.tp_read_offsets),
        "ends": dict(monitor.tp_end_offsets),
    }


@pytest.mark.parametrize("publishes", [1, 3])
def test_a_scrape_after_publish_equals_faust_monitor(publishes: int) -> None:
    faust_registry, batch_registry = CollectorRegistry(), CollectorRegistry()
    faust = PrometheusMonitor(metrics=FaustMetrics.create(faust_registry, "faust"))
    batch = batch_monitor.BatchMonitor(metrics=FaustMetrics.create(batch_registry, "faust"))
    for _ in range(publishes):
        _drive(faust, 2)
        _drive(batch, 2)
        batch.publish()
    assert _scrape(batch_registry) == _scrape(faust_registry)
    assert _fields(batch) == _fields(faust)
    assert batch.messages_received_total == 100 * publishes


def test_the_one_second_sample_publishes_first() -> None:
    batch = batch_monitor.BatchMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "faust"))
    _drive(batch, 3)
    assert batch._sample(0, 0) == (0, 150)
    assert batch.messages_s == 150
    assert batch.messages_received_total == 150


def test_the_monitor_refuses_another_faust(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pins.metadata.version
    fake = {"faust-streaming": "99.0.0"}
    monkeypatch.setattr(pins.metadata, "version", lambda p: fake.get(p) or real(p))
    with pytest.raises(pins.PatchVersionError, match=r"faust-streaming 99\.0\.0"):
        batch_monitor.setup(
            object(), registry=CollectorRegistry(), pattern="/metrics/faust", name_prefix="faust"
        )


def test_the_monitor_names_its_versions_and_they_are_installed() -> None:
    for package, version in batch_monitor.WRITTEN_FOR.items():
        assert f"{package} {version}" in (batch_monitor.__doc__ or "")
    pins.require("batch monitor", batch_monitor.WRITTEN_FOR)
