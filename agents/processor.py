"""What the agents do with a batch: decode, route, fold, write the store, emit, then keep state."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka.partitioner.default import murmur2

from agents.batch import LeadUpdate, fold_batch, refresh
from agents.codec import decode_fact, decode_header, encode_fact, encode_snapshot
from agents.facts import Fact, to_micros
from agents.fold import FoldConfig, LeadSnapshot
from agents.owned import OwnedLeads
from pipeline.errors import PermanentStoreError, StoreError
from pipeline.metrics import STAGE_LABELS, Metrics
from pipeline.topics import TopicNames
from schemas.classify import DeadLetter, Rejection, classify
from sinks.store import Sink

log = logging.getLogger("leadflow.agents")
_DAY_US = 86_400_000_000

# (topic, key, value) -> awaitable delivery; the Faust producer in a worker, a fake nowhere.
Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]


def partition_of(lead_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a ``lead_id`` key."""
    return (int(murmur2(lead_id.encode())) & 0x7FFFFFFF) % partitions


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One consumed message: where it came from and its raw value."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


class LeadProcessor:
    """The body of both agents; the Faust parts (table, producer) are injected."""

    def __init__(
        self,
        *,
        names: TopicNames,
        partitions: int,
        partition_counts: dict[str, int],
        config: FoldConfig,
        table: MutableMapping[str, bytes],
        sink: Sink,
        send: Send,
        metrics: Metrics,
        flush: Callable[[], Awaitable[None]] | None = None,
        restore: Callable[[str, bytes], None] | None = None,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self.names = names
        self.partitions = partitions
        self.partition_counts = partition_counts
        self.config = config
        self.table = table
        self.sink = sink
        self.send = send
        self.metrics = metrics
        self.retry_max_seconds = retry_max_seconds
        self._flush = flush
        self._restore = restore
        # One writer thread: the store gets one transaction at a time from this worker.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadflow-sink")
        # States written since the last producer flush. A table recovery during a rebalance
        # re-applies the changelog over memory, so it can bring back a record older than a
        # write still in the producer's buffer; these are put back once the rebalance is done.
        self._written: dict[str, bytes] = {}
        self._rebalancing = False
        self._lock: asyncio.Lock | None = None
        self.owned = OwnedLeads(lambda lead_id: partition_of(lead_id, partitions))

    # -- the two entry points ------------------------------------------------------------

    async def handle_input(self, messages: Sequence[Incoming]) -> None:
        """A batch from the marketing and sales topics."""
        now = utcnow()
        local: list[tuple[str, Fact]] = []
        forward: list[tuple[str, Fact]] = []
        letters: list[DeadLetter] = []
        for message in messages:
            kind = self.names.kind_of(message.topic)
            verdict = classify(message.value, kind, now)
            if isinstance(verdict, Rejection):
                letters.append(
                    DeadLetter.of(
                        message.value,
                        verdict,
                        message.topic,
                        message.partition,
                        message.offset,
                        now,
                    )
                )
                self.metrics.events.labels(message.topic, "invalid", "dead_letter").inc()
                self.metrics.dead_letters.labels(verdict.reason).inc()
                continue
            fact = Fact.from_event(verdict)
            if self._owns(message.topic, message.partition, verdict.lead_id):
                local.append((verdict.lead_id, fact))
            else:
                forward.append((verdict.lead_id, fact))
        await self._forward(forward)
        await self._apply(local, letters, now)

    async def handle_rekeyed(self, messages: Sequence[Incoming]) -> None:
        """A batch from the internal topic of events re-keyed by ``lead_id``."""
        facts = [decode_fact(m.value) for m in messages if m.value]
        await self._apply(facts, [], utcnow())

    # -- steps ---------------------------------------------------------------------------

    def _load(self, lead_id: str) -> bytes | None:
        state = self._written.get(lead_id)
        return state if state is not None else self.table.get(lead_id)

    def _owns(self, topic: str, partition: int, lead_id: str) -> bool:
        # The message sits where the lead's state lives only if its topic is co-partitioned
        # with the state table and the producer used the default partitioner on lead_id.
        if self.partition_counts.get(topic) != self.partitions:
            return False
        return partition == partition_of(lead_id, self.partitions)

    async def _forward(self, facts: list[tuple[str, Fact]]) -> None:
        deliveries = [
            await self.send(self.names.rekeyed, lead_id.encode(), encode_fact(lead_id, fact))
            for lead_id, fact in facts
        ]
        if deliveries:
            await asyncio.gather(*deliveries)

    async def _apply(
        self, facts: list[tuple[str, Fact]], letters: list[DeadLetter], now: datetime
    ) -> None:
        self._observe_lag(facts, now)
        async with self._batch_lock():
            result = fold_batch(facts, self._load, self.config, now)
            await self._commit(result.updates, letters, now)
        for (event_type, outcome), count in result.outcomes.items():
            topic = self.names.topic_of(event_type)
            self.metrics.events.labels(topic, event_type, outcome).inc(count)

    async def expire_due(self) -> int:
        """The SLA clock: turn pending SLAs whose deadline passed into breached; no scan."""
        now = utcnow()
        due = self.owned.due(to_micros(now))
        if not due:
            return 0
        async with self._batch_lock():
            updates = [
                update
                for lead_id in due
                if (update := refresh(lead_id, self._load(lead_id), self.config, now)) is not None
            ]
            await self._commit(updates, [], now)
        return len(updates)

    def _batch_lock(self) -> asyncio.Lock:
        # Both agents and the SLA clock may touch one lead: one batch at a time folds and writes.
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _commit(
        self, updates: list[LeadUpdate], letters: list[DeadLetter], now: datetime
    ) -> None:
        await self.write_store([u.snapshot for u in updates], letters, now)
        await self._emit(updates, letters, now)
        # Last: once the state holds these events, their duplicates change nothing, so the
        # store and the lifecycle stream must already have them (crash safety).
        for update in updates:
            self._written[update.lead_id] = update.state
            self.table[update.lead_id] = update.state
            self.owned.update(update.lead_id, update.old, update.new)
            self._count_changes(update)
        self.refresh_gauges()
        if self._flush is not None and updates:
            await self._flush()
            if not self._rebalancing:
                self._written.clear()

    def _count_changes(self, update: LeadUpdate) -> None:
        metrics = self.metrics
        for _, stage in update.entries:
            metrics.stage_entries.labels(stage).inc()
            if stage == "won":
                row = update.snapshot.lifecycle
                if row["amount"] is not None and row["currency"] is not None:
                    metrics.won_amount.labels(row["currency"]).inc(float(row["amount"]))
        old = update.old.statuses if update.old is not None else ""
        for i, letter in enumerate(update.new.statuses):
            before = old[i] if i < len(old) else ""
            if letter in "bB" and before not in ("b", "B"):
                metrics.sla_breaches.inc()
            if letter in "mB" and before not in ("m", "B"):
                seconds = update.snapshot.sla[i]["response_seconds"]
                if seconds is not None:
                    metrics.speed_to_lead.observe(seconds)

    def refresh_gauges(self) -> None:
        counts = self.owned.stage_counts()
        for stage in STAGE_LABELS:
            self.metrics.leads.labels(stage).set(counts.get(stage, 0))
        self.metrics.sla_pending.set(self.owned.pending)
        self.metrics.orphan_leads.set(self.owned.orphans)

    def _observe_lag(self, facts: list[tuple[str, Fact]], now: datetime) -> None:
        now_us = to_micros(now)
        for _, fact in facts:
            lag_us = now_us - fact.ts
            if lag_us < _DAY_US:
                self.metrics.event_lag.observe(max(0, lag_us) / 1_000_000)

    def begin_rebalance(self) -> None:
        self._rebalancing = True

    def rebuild_owned(self, partitions: set[int]) -> None:
        """After a rebalance: put back unflushed writes, count the leads of owned partitions."""
        self._written = {
            lead: state
            for lead, state in self._written.items()
            if partition_of(lead, self.partitions) in partitions
        }
        if self._restore is not None:
            for lead, state in self._written.items():
                self._restore(lead, state)
        self._rebalancing = False
        self.owned.rebuild(
            partitions,
            ((lead, decode_header(raw)) for lead, raw in list(self.table.items()) if raw),
        )
        self.refresh_gauges()

    async def write_store(
        self, snapshots: list[LeadSnapshot], letters: list[DeadLetter], now: datetime
    ) -> None:
        """Write one batch, retrying transient failures with backoff until it is written."""
        if not snapshots and not letters:
            return
        loop = asyncio.get_running_loop()
        delay = 0.25
        while True:
            started = time.perf_counter()
            try:
                await loop.run_in_executor(
                    self._executor, self.sink.write_batch, snapshots, letters, now
                )
            except PermanentStoreError:
                self.metrics.sink_errors.inc()
                raise
            except StoreError as exc:
                self.metrics.sink_errors.inc()
                log.warning("store write failed, retrying in %.2fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_seconds)
                continue
            self.metrics.sink_write_seconds.observe(time.perf_counter() - started)
            self.metrics.sink_rows.labels("lead_lifecycle").inc(len(snapshots))
            self.metrics.sink_rows.labels("dead_letters").inc(len(letters))
            return

    async def _emit(
        self, updates: list[LeadUpdate], letters: list[DeadLetter], now: datetime
    ) -> None:
        deliveries = []
        for update in updates:
            deliveries.append(
                await self.send(
                    self.names.lifecycle,
                    update.lead_id.encode(),
                    encode_snapshot(update.snapshot, now),
                )
            )
        for letter in letters:
            deliveries.append(
                await self.send(self.names.dead_letters, None, encode_dead_letter(letter))
            )
        if deliveries:
            await asyncio.gather(*deliveries)

    async def dead_letter_failure(self, message: Incoming, error: Exception) -> None:
        """Dead-letter one message whose processing raised (a bug, not bad input)."""
        rejection = Rejection(
            "invalid_event", f"processing failed: {type(error).__name__}: {error}"
        )
        now = utcnow()
        letter = DeadLetter.of(
            message.value, rejection, message.topic, message.partition, message.offset, now
        )
        self.metrics.dead_letters.labels(rejection.reason).inc()
        await self.write_store([], [letter], now)
        await self._emit([], [letter], now)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def encode_dead_letter(letter: DeadLetter) -> bytes:
    """The dead-letter topic's JSON: where the message was, why it was refused, its payload."""
    return orjson.dumps(
        {
            "topic": letter.topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "reason": letter.reason,
            "error": letter.error,
            "payload": letter.payload,
            "received_at": letter.received_at,
        },
        option=orjson.OPT_UTC_Z,
    )
