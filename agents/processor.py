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

from agents.batch import LeadUpdate, fold_batch
from agents.codec import decode_fact, encode_fact, encode_snapshot
from agents.facts import Fact
from agents.fold import FoldConfig, LeadSnapshot
from pipeline.errors import PermanentStoreError, StoreError
from pipeline.metrics import Metrics
from pipeline.topics import TopicNames
from schemas.classify import DeadLetter, Rejection, classify
from sinks.store import Sink

log = logging.getLogger("leadflow.agents")

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
        # One writer thread: the store gets one transaction at a time from this worker.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadflow-sink")
        # The states this worker wrote, authoritative over the table for the partitions it
        # holds: a table recovery during a rebalance may re-apply changelog records older
        # than writes still in the producer's buffer.
        self._written: dict[str, bytes] = {}
        self._lock: asyncio.Lock | None = None

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

    def keep_partitions(self, partitions: set[int]) -> None:
        """After a rebalance: forget the states of leads in partitions this worker lost."""
        self._written = {
            lead: state
            for lead, state in self._written.items()
            if partition_of(lead, self.partitions) in partitions
        }

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
        if self._lock is None:
            self._lock = asyncio.Lock()
        # Both agents may hold events of one lead: one batch at a time folds and writes.
        async with self._lock:
            result = fold_batch(facts, self._load, self.config, now)
            snapshots = [update.snapshot for update in result.updates]
            await self.write_store(snapshots, letters, now)
            await self._emit(result.updates, letters, now)
            # Last: once the state holds these events, their duplicates change nothing, so
            # the store and the lifecycle stream must already have them (crash safety).
            for update in result.updates:
                self._written[update.lead_id] = update.state
                self.table[update.lead_id] = update.state
        for (event_type, outcome), count in result.outcomes.items():
            topic = self.names.topic_of(event_type)
            self.metrics.events.labels(topic, event_type, outcome).inc(count)

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
