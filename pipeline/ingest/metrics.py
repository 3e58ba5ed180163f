"""The ingest service's Prometheus metrics, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class IngestMetrics:
    """Requests by route and status, accepted events by topic kind, refusals by reason."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leadflow_ingest_requests",
            "HTTP requests answered, by route and status code",
            ["route", "code"],
            registry=self.registry,
        )
        self.accepted = Counter(
            "leadflow_ingest_accepted",
            "events acknowledged by the broker, by topic kind",
            ["topic"],
            registry=self.registry,
        )
        self.refused = Counter(
            "leadflow_ingest_refused",
            "events refused at the door, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "leadflow_ingest_publish_seconds",
            "time from the first send of a request's events to the last acknowledgement",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
