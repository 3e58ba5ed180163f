"""The Faust app factory: topics, the per-lead state table, the agents, health and metrics."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from signal import SIGTERM
from typing import Any

import faust
from prometheus_client import generate_latest
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from leadflow.agents.batch import Limits
from leadflow.agents.history import StoreHistory
from leadflow.agents.metrics import Metrics
from leadflow.agents.ports import Record, Send, SendMany
from leadflow.agents.processor import LeadProcessor
from leadflow.agents.stream import Handler, run_batches
from leadflow.pipeline.faust import patches, record_batches
from leadflow.pipeline.faust.lanes import Lanes
from leadflow.pipeline.faust.patches import monitor as batch_monitor
from leadflow.pipeline.faust.patches.monitor import METRICS_CONTENT_TYPE
from leadflow.pipeline.kafka.topics import true_end_offsets
from leadflow.pipeline.settings import Settings
from leadflow.pipeline.sla_store import check_sla_policies
from leadflow.schemas.records import STATE_TABLE, TopicNames
from leadflow.sinks.goals import GoalProgress, goal_progress
from leadflow.sinks.store import Sink

log = logging.getLogger("leadflow")
# /health answers 503 once a batch has waited this long for the store (a store that stopped
# answering; the statement timeout of sinks/engine.py makes each attempt give up sooner).
STORE_STALLED_SECONDS = 30.0


@dataclass
class WorkerState:
    """What the web pages and the CLI read about a running worker."""

    ready: bool = False
    fatal: str | None = None
    batches: int = 0
    extras: dict[str, Any] = field(default_factory=dict)
    # This worker's SLA fingerprint against the store's; None without a store.
    sla_policies: dict[str, Any] | None = None


def faust_settings(settings: Settings) -> dict[str, Any]:
    """Faust options: raw bytes everywhere, fast group start-up, at-least-once."""
    return {
        "broker": [f"kafka://{server}" for server in settings.bootstrap_servers],
        "broker_credentials": settings.faust_credentials(),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "store": "memory://",
        "consumer_auto_offset_reset": "earliest",
        # A new group waits about half the session timeout for its members to join.
        "broker_session_timeout": settings.session_timeout,
        "broker_rebalance_timeout": settings.session_timeout,
        "broker_heartbeat_interval": max(0.3, settings.session_timeout / 10),
        "broker_commit_interval": 1.0,
        # On a rebalance, let batches in flight reach the store and ack before partitions go.
        "stream_wait_empty": True,
        "producer_linger": 0.002,
        "producer_compression_type": settings.compression_type,
        "web_enabled": True,
        "web_bind": settings.web_host,
        "web_port": settings.web_port,
        "web_in_thread": False,
        "Table": LeadTable,
    }


class LeadTable(faust.Table[str, bytes]):
    """The per-lead state table, its changelog keyed by the lead id's bytes.

    Faust encodes ``str`` table keys as JSON (``"L-1"`` with its quotes), which would hash
    to another partition than the lead's events. Raw keys put each changelog record on its
    lead's partition, so a worker recovering its partitions gets the state of its own leads.
    """

    def _serializer_from_type(self, typ: Any) -> Any:
        return "raw" if typ is str else super()._serializer_from_type(typ)


class LeadflowApp(faust.App):
    """A Faust app that also carries the worker's state and its batch processor."""

    leadflow: WorkerState
    processor: LeadProcessor
    end_probe: Callable[[dict[Any, int]], dict[Any, int]]
    lanes: Lanes


def create_app(
    settings: Settings,
    *,
    sink: Sink,
    partition_counts: dict[str, int],
    metrics: Metrics | None = None,
    store: Engine | None = None,
) -> LeadflowApp:
    """Build the pipeline's Faust app; ``partition_counts`` come from ``ensure_topics``."""
    names = settings.topic_names()
    metrics = metrics or Metrics.create()
    patches.install(fetch_max_wait_ms=settings.fetch_max_wait_ms)
    app = LeadflowApp(settings.app_id, **faust_settings(settings))
    app.leadflow = WorkerState()
    app.end_probe = functools.partial(true_end_offsets, settings)
    # Faust's own sensors, in the same registry: /metrics serves both.
    monitor = batch_monitor.setup(
        app, pattern="/metrics/faust", registry=metrics.registry, name_prefix="faust"
    )
    app.processor = _processor(app, settings, names, sink, partition_counts, metrics, store)
    app.lanes = Lanes()
    _add_agents(app, settings, names)
    _add_rebalance_hooks(app, names)
    _add_sla_clock(app, settings)
    _add_pages(app, metrics, monitor)
    if store is not None:
        if settings.worker_dashboard:
            from leadflow.pipeline.dashboard.server import register_pages

            register_pages(app, store)
        app.leadflow.sla_policies = check_sla_policies(store, app.processor.config)
        _add_goals_gauge(app, settings, store, metrics)
    return app


def _processor(
    app: LeadflowApp,
    settings: Settings,
    names: TopicNames,
    sink: Sink,
    partition_counts: dict[str, int],
    metrics: Metrics,
    store: Engine | None,
) -> LeadProcessor:
    table = app.Table(
        STATE_TABLE,
        default=None,
        partitions=settings.partitions,
        use_partitioner=True,
        key_type=str,
        value_type=bytes,
    )
    send, send_many = _senders(app, names, settings.codec_id)
    return LeadProcessor(
        names=names,
        partitions=settings.partitions,
        partition_counts=partition_counts,
        config=settings.fold_config(),
        # The table in memory; the processor sends its changelog records itself, in batches.
        table=table.data,
        sink=sink,
        send=send,
        send_many=send_many,
        metrics=metrics,
        flush=app.producer.flush,
        retry_max_seconds=settings.store_retry_max_seconds,
        limits=Limits(max_events=settings.max_events_per_lead),
        history=None if store is None else StoreHistory(store),
    )


def _senders(app: LeadflowApp, names: TopicNames, codec: int) -> tuple[Send, SendMany]:
    """One-record and record-batch sends through the app's producer, primed on first use."""
    primed = False

    async def prime() -> None:
        nonlocal primed
        if not primed:
            await _prime_producer(app, names)
            primed = True

    async def send(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        await prime()
        return await app.producer.send(topic, key, value, None, None, None)

    async def send_many(topic: str, records: Sequence[Record]) -> list[Any]:
        await prime()
        producer: Any = app.producer
        return await record_batches.send_records(
            producer._ensure_producer(), topic, records, codec=codec
        )

    return send, send_many


def _stop_on_fatal(state: WorkerState) -> Callable[[str], None]:
    def on_fatal(message: str) -> None:
        if state.fatal is not None:  # later batches fail for the same reason: stop once
            return
        state.fatal = message
        log.critical("leadflow worker stops: %s", message)
        os.kill(os.getpid(), SIGTERM)

    return on_fatal


def _add_agents(app: LeadflowApp, settings: Settings, names: TopicNames) -> None:
    """The two agents: input events, and events re-keyed onto their lead's partition."""
    processor = app.processor
    inputs = app.topic(*names.inputs, key_type=bytes, value_type=bytes)
    rekeyed = app.topic(names.rekeyed, key_type=bytes, value_type=bytes)
    batch_agent = functools.partial(_batch_agent, app, settings, _stop_on_fatal(app.leadflow))
    app.agent(inputs, name="leadflow.ingest")(batch_agent(processor.handle_input, names.inputs))
    app.agent(rekeyed, name="leadflow.rekeyed")(
        batch_agent(processor.handle_rekeyed, (names.rekeyed,))
    )


def _batch_agent(
    app: LeadflowApp,
    settings: Settings,
    on_fatal: Callable[[str], None],
    handler: Handler,
    topics: tuple[str, ...],
) -> Any:
    lane = app.lanes.add(app.flow_control, topics, max(4 * settings.batch_size, 1000))
    state = app.leadflow

    def seen(messages: list[Any]) -> None:
        # Faust's livelock check reads when each partition's stream last took an event.
        inbound = app.monitor.stream_inbound_time
        now = time.monotonic()
        for message in messages:
            inbound[message.tp] = now

    # The stream itself stays empty: the fetch loop hands this agent's records to its lane.
    async def agent(stream: Any) -> Any:
        batches = lane.batches(settings.batch_size, settings.batch_seconds)
        consumer, sensors = app.consumer, app.sensors

        def ack(message: Any) -> None:
            try:
                consumer.ack(message)
            finally:  # what the stream would tell Faust's sensors (messages active)
                sensors.on_message_out(message.tp, message.offset, message)

        async for size in run_batches(batches, handler, app.processor, on_fatal, ack, seen):
            state.batches += 1
            yield size

    return agent


def _add_rebalance_hooks(app: LeadflowApp, names: TopicNames) -> None:
    processor, state = app.processor, app.leadflow
    on_fatal = _stop_on_fatal(state)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        processor.begin_rebalance()

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def _ready(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        await _prime_producer(app, names)
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == names.rekeyed}
        processor.rebuild_owned(owned)
        # Batches wait for the recovery (a store that does not answer holds them, not this).
        processor.start_recovery(owned).add_done_callback(recovered)
        state.ready = True

    def recovered(task: asyncio.Task[int]) -> None:
        if not task.cancelled() and task.exception() is not None:
            on_fatal(f"refolding leads from lead_events failed: {task.exception()!r}")


def _add_sla_clock(app: LeadflowApp, settings: Settings) -> None:
    """Pending SLAs turn breached at their deadline, on every worker for its own leads."""

    @app.timer(interval=settings.sla_check_seconds, on_leader=False)  # type: ignore[untyped-decorator]
    async def sla_clock() -> None:
        if app.leadflow.ready:
            await app.processor.expire_due()


def _add_pages(app: LeadflowApp, metrics: Metrics, monitor: batch_monitor.BatchMonitor) -> None:
    state, processor = app.leadflow, app.processor

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        waited = processor.oldest_unwritten_seconds()
        store = "stalled" if waited > STORE_STALLED_SECONDS else "ok"
        healthy = state.ready and state.fatal is None and store == "ok"
        body = {
            "ready": state.ready,
            "fatal": state.fatal,
            "batches": state.batches,
            "recovering": processor.recovering,
            "store": {"state": store, "oldest_unwritten_batch_seconds": round(waited, 3)},
            "sla_policies": state.sla_policies,
        }
        return web.json(body, status=200 if healthy else 503)

    # Liveness: 200 while the process serves HTTP, also while it rebalances or recovers
    # (when /health, the readiness answer, is 503).
    @app.page("/live")
    async def live(web: Any, request: Any) -> Any:
        return web.json({"live": True})

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        monitor.publish()
        return web.bytes(generate_latest(metrics.registry), content_type=METRICS_CONTENT_TYPE)


def _add_goals_gauge(app: LeadflowApp, settings: Settings, store: Engine, metrics: Metrics) -> None:
    @app.timer(interval=settings.goals_refresh_seconds)  # type: ignore[untyped-decorator]
    async def goals_gauge() -> None:
        loop = asyncio.get_running_loop()
        try:
            progress = await loop.run_in_executor(None, _read_goals, store)
        except SQLAlchemyError as exc:
            log.warning("cannot read the shared goals: %s", exc)
            return
        metrics.goal_progress.clear()
        for item in progress:
            if item.ratio is not None:
                metrics.goal_progress.labels(item.goal.period, item.goal.metric).set(item.ratio)


def _read_goals(store: Engine) -> list[GoalProgress]:
    with store.connect() as conn:
        return goal_progress(conn)


async def _prime_producer(app: LeadflowApp, names: TopicNames) -> None:
    # With use_partitioner the table's changelog writes need the producer to know the topic's
    # partitions; aiokafka only loads them lazily, and the first write would fail without it.
    producer: Any = app.producer
    producer = producer._ensure_producer()
    for topic in (names.changelog, names.rekeyed, names.lifecycle, names.dead_letters):
        await producer.partitions_for(topic)
