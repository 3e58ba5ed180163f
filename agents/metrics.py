"""The Prometheus metrics of a worker, created as one bundle against an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECONDS = (1, 60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 7 * 86400)
_LAG = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
_WRITE = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every metric leadflow exports; build one per registry with :meth:`create`."""

    registry: CollectorRegistry
    events: Counter
    dead_letters: Counter
    stage_entries: Counter
    leads: Gauge
    speed_to_lead: Histogram
    sla_breaches: Counter
    sla_pending: Gauge
    sla_outcomes: Counter
    speed_to_lead_business: Histogram
    event_lag: Histogram
    sink_write_seconds: Histogram
    sink_rows: Counter
    sink_errors: Counter
    won_amount: Counter
    orphan_leads: Gauge
    goal_progress: Gauge
    sink_oldest_unwritten: Gauge
    recovered_leads: Counter
    backfilled_leads: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        reg = registry if registry is not None else CollectorRegistry()
        return cls(
            registry=reg,
            events=Counter(
                "leadflow_events",
                "Input messages by topic, event type and outcome (accepted, duplicate, "
                "dead_letter).",
                ["topic", "event_type", "outcome"],
                registry=reg,
            ),
            dead_letters=Counter(
                "leadflow_dead_letters", "Rejected messages by reason.", ["reason"], registry=reg
            ),
            stage_entries=Counter(
                "leadflow_stage_entries",
                "Stage entries (new lead_stage_transitions rows) by stage.",
                ["stage"],
                registry=reg,
            ),
            leads=Gauge(
                "leadflow_leads",
                "Leads currently in each stage, over the partitions this worker owns.",
                ["stage"],
                registry=reg,
            ),
            speed_to_lead=Histogram(
                "leadflow_speed_to_lead_seconds",
                "First sales response after the MQL, per cycle.",
                registry=reg,
                buckets=_SECONDS,
            ),
            sla_breaches=Counter(
                "leadflow_sla_breaches", "Handoff SLAs that turned breached.", registry=reg
            ),
            sla_pending=Gauge(
                "leadflow_sla_pending",
                "Handoff SLAs still pending, over the partitions this worker owns.",
                registry=reg,
            ),
            # The policy label takes the names of the policy file (or "single_clock"): bounded.
            sla_outcomes=Counter(
                "leadflow_sla_outcomes",
                "Handoff SLAs decided, by policy and outcome (met, breached).",
                ["policy", "outcome"],
                registry=reg,
            ),
            speed_to_lead_business=Histogram(
                "leadflow_speed_to_lead_business_seconds",
                "First sales response after the MQL in the policy's business time, per cycle.",
                ["policy"],
                registry=reg,
                buckets=_SECONDS,
            ),
            event_lag=Histogram(
                "leadflow_event_lag_seconds",
                "Processing time minus occurred_at, for events younger than a day.",
                registry=reg,
                buckets=_LAG,
            ),
            sink_write_seconds=Histogram(
                "leadflow_sink_write_seconds",
                "Time to write one batch to the SQL store.",
                registry=reg,
                buckets=_WRITE,
            ),
            sink_rows=Counter(
                "leadflow_sink_rows",
                "Rows written to the SQL store by table.",
                ["table"],
                registry=reg,
            ),
            sink_errors=Counter(
                "leadflow_sink_errors",
                "Failed attempts to write a batch to the store.",
                registry=reg,
            ),
            won_amount=Counter(
                "leadflow_won_amount", "Won deal amounts by currency.", ["currency"], registry=reg
            ),
            orphan_leads=Gauge(
                "leadflow_orphan_leads",
                "Leads with no lead.created yet, over the partitions this worker owns.",
                registry=reg,
            ),
            goal_progress=Gauge(
                "leadflow_goal_progress_ratio",
                "Actual over target of each shared goal.",
                ["period", "metric"],
                registry=reg,
            ),
            sink_oldest_unwritten=Gauge(
                "leadflow_sink_oldest_unwritten_batch_seconds",
                "Age of the oldest batch sent to the SQL store and not written yet (0: none).",
                registry=reg,
            ),
            recovered_leads=Counter(
                "leadflow_recovered_leads",
                "Leads whose Kafka state was behind the store, refolded from lead_events.",
                registry=reg,
            ),
            backfilled_leads=Counter(
                "leadflow_backfilled_leads",
                "Leads of a store older than lead_events whose events the worker wrote there.",
                registry=reg,
            ),
        )
