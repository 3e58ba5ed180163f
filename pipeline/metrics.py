"""The Prometheus metrics of a worker, created as one bundle against an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every metric leadflow exports; build one per registry with :meth:`create`."""

    registry: CollectorRegistry
    events: Counter
    dead_letters: Counter
    sink_write_seconds: Histogram
    sink_rows: Counter
    sink_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        reg = registry if registry is not None else CollectorRegistry()
        return cls(
            registry=reg,
            events=Counter(
                "leadflow_events",
                "Input messages by topic, event type and outcome "
                "(accepted, duplicate, dead_letter).",
                ["topic", "event_type", "outcome"],
                registry=reg,
            ),
            dead_letters=Counter(
                "leadflow_dead_letters",
                "Rejected input messages by reason.",
                ["reason"],
                registry=reg,
            ),
            sink_write_seconds=Histogram(
                "leadflow_sink_write_seconds",
                "Time to write one batch to the SQL store.",
                registry=reg,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            ),
            sink_rows=Counter(
                "leadflow_sink_rows",
                "Rows written to the SQL store by table.",
                ["table"],
                registry=reg,
            ),
            sink_errors=Counter(
                "leadflow_sink_errors",
                "Failed attempts to write a batch to the SQL store.",
                registry=reg,
            ),
        )
