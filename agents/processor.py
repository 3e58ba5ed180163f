"""What the agents do with a batch: decode, route, fold, write the store, emit, then keep state."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy.exc import SQLAlchemyError

from leadflow.agents.batch import (
    DEFAULT_LIMITS,
    FoldCache,
    LeadUpdate,
    Limits,
    fold_batch,
    lost_of,
    recovered,
    refresh,
    state_version,
)
from leadflow.agents.codec import (
    Origin,
    decode_forwarded,
    decode_header,
    decode_retraction,
    encode_fact,
    encode_retraction,
    encode_snapshot,
    event_payload,
)
from leadflow.agents.facts import Fact, to_micros
from leadflow.agents.fold import FoldConfig
from leadflow.agents.metrics import Metrics
from leadflow.agents.owned import OwnedLeads
from leadflow.agents.partitioning import key_hash, partition_of
from leadflow.agents.ports import History, Record, Send, SendMany
from leadflow.schemas.classify import DeadLetter, Rejection, classify
from leadflow.schemas.errors import StoreError
from leadflow.schemas.records import Loss, TopicNames, Written
from leadflow.schemas.vocabulary import CONFLICTING_DUPLICATE, SINGLE_CLOCK, STAGE_LABELS
from leadflow.sinks.conflicts import ORIGIN
from leadflow.sinks.store import Sink
from leadflow.sinks.writer import OrderedSink, ThreadWriter

log = logging.getLogger("leadflow.agents")
_T = TypeVar("_T")
_DAY_US = 86_400_000_000
RECOVER_CHUNK = 500  # leads refolded from the store per batch written
FLUSH_SECONDS = 0.5  # how long written states are kept aside before the changelog flush


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One consumed message: where it came from and its raw value."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(slots=True)
class _Job:
    """One batch folded and waiting for the store: what to write, emit and count."""

    updates: list[LeadUpdate]
    letters: list[DeadLetter]
    now: datetime
    outcomes: Counter[tuple[str, str]]
    written: asyncio.Future[int] | None = None  # the store's answer
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


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
        send_many: SendMany | None = None,
        flush: Callable[[], Awaitable[None]] | None = None,
        retry_max_seconds: float = 30.0,
        pipeline_depth: int = 2,
        limits: Limits = DEFAULT_LIMITS,
        history: History | None = None,
    ) -> None:
        self.names = names
        self.history = history
        self._recovered = asyncio.Event()  # clear while a recovery runs: batches wait for it
        self._recovered.set()
        self._recoveries = 0  # recoveries started and not finished
        self.partitions = partitions
        self.partition_counts = partition_counts
        self.config = config
        self.table = table  # memory only: the processor writes the changelog itself
        self.sink = sink
        # Batches go to the store as they are folded, in order, each retried until written.
        self.writer = (
            sink if isinstance(sink, OrderedSink) else ThreadWriter(sink, retry_max_seconds)
        )
        self._observer = _StoreObserver(metrics)
        self._unwritten: dict[int, float] = {}  # id of a job sent to the store -> monotonic time
        metrics.sink_oldest_unwritten.set_function(self.oldest_unwritten_seconds)
        self.send = send
        self.send_many = send_many or _one_by_one(send)
        self.metrics = metrics
        self.retry_max_seconds = retry_max_seconds
        self.limits = limits
        self._folds = FoldCache()
        self._flush = flush
        # States written since the last producer flush. A table recovery during a rebalance
        # re-applies the changelog over memory, so it can bring back a record older than a
        # write still in the producer's buffer; these are put back once the rebalance is done.
        self._written: dict[str, bytes] = {}
        self._unflushed: list[tuple[str, bytes]] = []
        self._flushed_at = time.monotonic()
        self._rebalancing = False
        self.pipeline_depth = pipeline_depth
        self._stored: asyncio.Queue[_Job] = asyncio.Queue()
        self._room = asyncio.Semaphore(pipeline_depth)
        self._emitter: asyncio.Task[None] | None = None
        self._halted: BaseException | None = None  # a batch failed: nothing after it is emitted
        self.owned = OwnedLeads(lambda lead_id: partition_of(lead_id, partitions))

    # -- the two entry points ------------------------------------------------------------

    async def handle_input(self, messages: Sequence[Incoming]) -> Awaitable[None]:
        """A batch from the marketing and sales topics; returns when it will be written."""
        now = utcnow()
        local: list[tuple[str, Fact]] = []
        local_messages: list[Incoming] = []
        forward: list[tuple[str, Fact, Origin]] = []
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
                continue
            fact = Fact.from_event(verdict)
            if self._owns(message.topic, message.partition, verdict.lead_id):
                local.append((verdict.lead_id, fact))
                local_messages.append(message)
            else:
                origin = (message.topic, message.partition, message.offset)
                forward.append((verdict.lead_id, fact, origin))
        await self._forward(forward)

        def refuse(index: int, rejection: Rejection, copy: Fact | None) -> DeadLetter:
            m = local_messages[index]
            payload = m.value if copy is None else event_payload(local[index][0], copy)
            return DeadLetter.of(payload, rejection, m.topic, m.partition, m.offset, now)

        def place(index: int) -> Place:
            m = local_messages[index]
            return (m.topic, m.partition, m.offset)

        return await self._apply(local, letters, now, refuse, place)

    async def handle_rekeyed(self, messages: Sequence[Incoming]) -> Awaitable[None]:
        """A batch from the internal topic of events re-keyed by ``lead_id``, and of
        retractions (a lead lost an event_id to another lead)."""
        now = utcnow()
        retractions: list[Loss] = []
        forwarded = []
        for m in messages:
            if not m.value:
                continue
            retraction = decode_retraction(m.value)
            if retraction is None:
                forwarded.append((m, decode_forwarded(m.value)))
            else:
                retractions.append(retraction)

        def refuse(index: int, rejection: Rejection, copy: Fact | None) -> DeadLetter:
            # Where the event came in (so a replayed forward is dead-lettered once), else here.
            m, (lead_id, fact, origin) = forwarded[index]
            topic, partition, offset = origin or (m.topic, m.partition, m.offset)
            payload = event_payload(lead_id, copy or fact)
            return DeadLetter.of(payload, rejection, topic, partition, offset, now)

        def place(index: int) -> Place:
            m, (_, _, origin) = forwarded[index]
            return origin or (m.topic, m.partition, m.offset)

        facts = [(lead_id, fact) for _, (lead_id, fact, _) in forwarded]
        return await self._apply(facts, [], now, refuse, place, retractions)

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

    async def _forward(self, facts: list[tuple[str, Fact, Origin]]) -> None:
        if not facts:
            return
        topic = self.names.rekeyed
        count = self._partition_count(topic)
        records = []
        for lead_id, fact, origin in facts:
            key = lead_id.encode()
            records.append((key_hash(key) % count, key, encode_fact(lead_id, fact, origin)))
        await asyncio.gather(*await self.send_many(topic, records))

    async def _retract(self, losses: Sequence[Loss]) -> list[Awaitable[Any]]:
        """One retraction record per loss, on the re-keying topic's partition of the losing
        lead: its owner folds it in order with that lead's other events."""
        if not losses:
            return []
        topic = self.names.rekeyed
        count = self._partition_count(topic)
        records = []
        for lead_id, event_id, copy in losses:
            key = lead_id.encode()
            value = encode_retraction(lead_id, event_id, copy)
            records.append((key_hash(key) % count, key, value))
        return await self.send_many(topic, records)

    def _partition_count(self, topic: str) -> int:
        return self.partition_counts.get(topic, self.partitions)

    async def _apply(
        self,
        facts: list[tuple[str, Fact]],
        letters: list[DeadLetter],
        now: datetime,
        refuse: Refuse,
        place: Callable[[int], Place],
        retractions: Sequence[Loss] = (),
    ) -> Awaitable[None]:
        """Fold now (later batches must see these events); store, emit and keep in order later.

        Folding and the tentative state update have no await between them, so batches of both
        agents and the SLA clock never interleave on a lead.
        """
        if not self._recovered.is_set():
            await self._recovered.wait()
            now = utcnow()
        self._observe_lag(facts, now)
        result = fold_batch(
            facts,
            self._load,
            self.config,
            now,
            limits=self.limits,
            cache=self._folds,
            retractions=retractions,
        )
        # Events past a lead's limits: dead-lettered, never dropped silently.
        letters = letters + [
            refuse(index, Rejection("invalid_event", error), None)
            for index, error in result.refused
        ]
        letters += [
            _conflict_letter(refuse, index, copy, facts) for index, copy in result.conflicts
        ]
        _mark_places(result.updates, facts, place)
        self._hold(result.updates)
        return await self._submit(_Job(result.updates, letters, now, result.outcomes))

    async def recover(self, partitions: set[int]) -> int:
        """Refold from lead_events every lead of ``partitions`` whose table value is behind its
        stored version (a new broker, a lost or short changelog), before any batch folds it;
        the number of leads recovered."""
        return await self.start_recovery(partitions)

    @property
    def recovering(self) -> bool:
        """Whether a recovery runs (batches wait for it)."""
        return self._recoveries > 0

    def start_recovery(self, partitions: set[int]) -> asyncio.Task[int]:
        """:meth:`recover` as a task; batches wait from now until every recovery is done."""
        self._recoveries += 1
        self._recovered.clear()
        return asyncio.get_running_loop().create_task(self._recover(partitions))

    async def _recover(self, partitions: set[int]) -> int:
        try:
            if self.history is None:
                return 0
            history = self.history
            started = time.monotonic()
            loop = asyncio.get_running_loop()

            def owned(lead_id: str) -> bool:
                return partition_of(lead_id, self.partitions) in partitions

            versions = await _until_read(loop, history.versions, owned)
            behind = sorted(
                lead
                for lead, version in versions.items()
                if state_version(self._load(lead)) < version - 1
            )
            losses = await _until_read(loop, history.losses, owned)
            # Losses the store committed whose retraction never reached the lead's state.
            unretracted = [
                lead
                for lead, lost in losses.items()
                if not {(e, d) for e, ds in lost.items() for d in ds} <= lost_of(self._load(lead))
            ]
            backfilled = await self._unrecorded(history, owned, set(behind))
            refold = sorted({*behind, *backfilled, *unretracted})
            for start in range(0, len(refold), RECOVER_CHUNK):
                chunk = refold[start : start + RECOVER_CHUNK]
                facts = await _until_read(loop, history.facts, chunk)
                beaten = await _until_read(loop, history.beaten, chunk)
                now = utcnow()
                updates = [
                    recovered(
                        lead,
                        self._load(lead),
                        facts.get(lead, []),
                        self.config,
                        now,
                        losses.get(lead),
                        beaten.get(lead),
                    )
                    for lead in chunk
                ]
                self._hold(updates)
                await (await self._submit(_Job(updates, [], now, Counter())))
            if behind:
                self.metrics.recovered_leads.inc(len(behind))
                log.warning(
                    "recovered %d leads of partitions %s from lead_events in %.1fs: the Kafka "
                    "state was behind the store",
                    len(behind),
                    sorted(partitions),
                    time.monotonic() - started,
                )
            if backfilled:
                self.metrics.backfilled_leads.inc(len(backfilled))
                log.warning(
                    "wrote the events of %d leads of partitions %s to lead_events from the "
                    "Kafka state: the store held their rows but not their events",
                    len(backfilled),
                    sorted(partitions),
                )
            return len(behind)
        finally:
            self._recoveries -= 1
            if not self._recoveries:
                self._recovered.set()

    async def _unrecorded(
        self, history: History, owned: Callable[[str], bool], behind: set[str]
    ) -> list[str]:
        """The owned leads whose events the store lacks and the table holds (not ``behind``):
        their events go to lead_events, so that the store keeps their history."""
        loop = asyncio.get_running_loop()
        missing = await _until_read(loop, history.unrecorded, owned)
        return [lead for lead in missing if lead not in behind and state_version(self._load(lead))]

    async def expire_due(self) -> int:
        """The SLA clock: turn pending SLAs whose deadline passed into breached; no scan."""
        now = utcnow()
        due = self.owned.due(to_micros(now))
        updates = [
            update
            for lead_id in due
            if (update := refresh(lead_id, self._load(lead_id), self.config, now)) is not None
        ]
        if updates:
            self._hold(updates)
            await (await self._submit(_Job(updates, [], now, Counter())))
        return len(updates)

    def _hold(self, updates: list[LeadUpdate]) -> None:
        # The new states are what later batches fold on, in memory only: the changelog gets
        # them once the store has them, so a restart never holds events the store lacks.
        for update in updates:
            self._written[update.lead_id] = update.state
            self.table[update.lead_id] = update.state

    async def _submit(self, job: _Job) -> asyncio.Future[None]:
        """Send a folded batch to the store now and queue it to be emitted once written.

        No await comes before both, so batches reach the store and the emitter in the order
        they were folded; then wait while ``pipeline_depth`` batches are not emitted yet.
        """
        if self._emitter is None or self._emitter.done():
            self._stored = asyncio.Queue()
            self._room = asyncio.Semaphore(self.pipeline_depth)
            self._emitter = asyncio.get_running_loop().create_task(self._emit_jobs())
        snapshots = [u.snapshot for u in job.updates]
        written = self.writer.submit(snapshots, job.letters, job.now, self._observer)
        job.written = asyncio.wrap_future(written)
        job.written.add_done_callback(_retrieved)  # a batch after a failed one is never awaited
        self._unwritten[id(job)] = time.monotonic()
        job.written.add_done_callback(lambda _: self._unwritten.pop(id(job), None))
        self._stored.put_nowait(job)
        await self._room.acquire()
        return job.done

    def oldest_unwritten_seconds(self) -> float:
        """How long the oldest batch sent to the store has waited for it (0 when none waits)."""
        times = list(self._unwritten.values())
        return time.monotonic() - min(times) if times else 0.0

    async def _emit_jobs(self) -> None:
        """Emit each batch once the store has it, and commit its state, in order.

        After a batch that was not written or not emitted, every later one fails with it.
        """
        while True:
            job = await self._stored.get()
            try:
                if self._halted is None and job.written is not None:
                    written = await job.written
                    await self._finish(job, written.losses if isinstance(written, Written) else ())
            except asyncio.CancelledError:
                job.done.cancel()
                raise
            except Exception as exc:
                self._halted = exc
            if self._halted is not None and not job.done.done():
                job.done.set_exception(self._halted)
            self._room.release()

    async def _finish(self, job: _Job, losses: Sequence[Loss]) -> None:
        """Queue a stored batch's snapshots, changelog and the retractions of the ``losses``
        the store recorded with it; the job is done once delivered.

        The next job's store write does not wait for this one's deliveries; Faust flushes the
        producer before it commits any offset, and the offsets wait for ``job.done``.
        """
        updates, letters, now = job.updates, job.letters, job.now
        keys = [update.lead_id.encode() for update in updates]
        hashes = [key_hash(key) for key in keys]
        deliveries = await self._emit(updates, keys, hashes, letters, now)
        deliveries += await self._retract(losses)
        for update, hashed in zip(updates, hashes, strict=True):
            self.owned.update(update.lead_id, update.old, update.new, hashed % self.partitions)
            self._count_changes(update)
            self._unflushed.append((update.lead_id, update.state))
        for letter in letters:
            self.metrics.events.labels(letter.topic, "invalid", "dead_letter").inc()
            self.metrics.dead_letters.labels(letter.reason).inc()
        for (event_type, outcome), count in job.outcomes.items():
            topic = self.names.topic_of(event_type)
            self.metrics.events.labels(topic, event_type, outcome).inc(count)
        self.refresh_gauges()
        if time.monotonic() - self._flushed_at > FLUSH_SECONDS:
            await self._flush_changelog()
        done = asyncio.gather(*deliveries)
        done.add_done_callback(lambda f: _settle(job.done, f))

    async def _flush_changelog(self) -> None:
        """Flush the producer; states it has delivered no longer need keeping aside."""
        self._flushed_at = time.monotonic()
        if self._flush is None:
            return
        flushed, self._unflushed = self._unflushed, []
        await self._flush()
        if not self._rebalancing:
            for lead_id, state in flushed:
                if self._written.get(lead_id) is state:
                    del self._written[lead_id]
        else:
            self._unflushed.extend(flushed)

    def _count_changes(self, update: LeadUpdate) -> None:
        metrics = self.metrics
        # Net per stage: a late event that moves an entry to another cycle is not a new one.
        net = Counter(stage for _, stage in update.entries)
        net.subtract(stage for _, stage in update.dropped)
        for stage, count in net.items():
            if count > 0:
                metrics.stage_entries.labels(stage).inc(count)
        for _, stage in update.entries:
            if stage == "won":
                row = update.snapshot.lifecycle
                if row["amount"] is not None and row["currency"] is not None:
                    metrics.won_amount.labels(row["currency"]).inc(float(row["amount"]))
        self._count_sla(update)

    def _count_sla(self, update: LeadUpdate) -> None:
        """Breaches net; outcomes and response times once per cycle, when first decided."""
        metrics = self.metrics
        old = update.old.statuses if update.old is not None else ""
        # Net, like the stages: a restated history that only moves a breach adds none.
        breached = sum(letter in "bB" for letter in update.new.statuses)
        growth = breached - sum(letter in "bB" for letter in old)
        if growth > 0:
            metrics.sla_breaches.inc(growth)
        for i, letter in enumerate(update.new.statuses):
            before = old[i] if i < len(old) else ""
            row = update.snapshot.sla[i]
            policy = row.get("policy") or SINGLE_CLOCK
            if letter in "mBb" and before not in ("m", "B", "b"):
                outcome = "met" if letter == "m" else "breached"
                metrics.sla_outcomes.labels(policy, outcome).inc()
            if letter in "mB" and before not in ("m", "B"):
                if row["response_seconds"] is not None:
                    metrics.speed_to_lead.observe(row["response_seconds"])
                if row.get("response_business_seconds") is not None:
                    business = row["response_business_seconds"]
                    metrics.speed_to_lead_business.labels(policy).observe(business)

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
        for lead, state in self._written.items():
            self.table[lead] = state
        self._rebalancing = False
        self.owned.rebuild(
            partitions,
            ((lead, decode_header(raw)) for lead, raw in list(self.table.items()) if raw),
        )
        self.refresh_gauges()

    async def _emit(
        self,
        updates: list[LeadUpdate],
        keys: list[bytes],
        hashes: list[int],
        letters: list[DeadLetter],
        now: datetime,
    ) -> list[Awaitable[Any]]:
        """Queue the lifecycle snapshots, the states' changelog records and the dead letters;
        returns their deliveries. Both keyed topics are partitioned as Kafka's default
        partitioner would partition the lead id (the changelog: as the lead's events)."""
        lifecycle = self._partition_count(self.names.lifecycle)
        snapshots = []
        changes = []
        for update, key, hashed in zip(updates, keys, hashes, strict=True):
            snapshots.append((hashed % lifecycle, key, encode_snapshot(update.snapshot, now)))
            changes.append((hashed % self.partitions, key, update.state))
        deliveries: list[Awaitable[Any]] = []
        if updates:
            deliveries += await self.send_many(self.names.lifecycle, snapshots)
            deliveries += await self.send_many(self.names.changelog, changes)
        for letter in letters:
            deliveries.append(
                await self.send(self.names.dead_letters, None, encode_dead_letter(letter))
            )
        return deliveries

    async def dead_letter_failure(self, message: Incoming, error: Exception) -> None:
        """Dead-letter one message whose processing raised (a bug, not bad input)."""
        rejection = Rejection(
            "invalid_event", f"processing failed: {type(error).__name__}: {error}"
        )
        now = utcnow()
        letter = DeadLetter.of(
            message.value, rejection, message.topic, message.partition, message.offset, now
        )
        await (await self._submit(_Job([], [letter], now, Counter())))

    def close(self) -> None:
        if self._emitter is not None:
            self._emitter.cancel()
        if self.writer is not self.sink:  # a sink passed in is closed by its owner
            self.writer.close()


class _StoreObserver:
    """The store writer's attempts, as metrics and log lines (called from its threads)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def retrying(self, error: StoreError, delay: float) -> None:
        self.metrics.sink_errors.inc()
        log.warning("store write failed, retrying in %.2fs: %s", delay, error)

    def written(self, seconds: float, snapshots: int, letters: int) -> None:
        self.metrics.sink_write_seconds.observe(seconds)
        self.metrics.sink_rows.labels("lead_lifecycle").inc(snapshots)
        self.metrics.sink_rows.labels("dead_letters").inc(letters)

    def failed(self, error: StoreError) -> None:
        self.metrics.sink_errors.inc()


async def _until_read(
    loop: asyncio.AbstractEventLoop, read: Callable[[Any], _T], argument: Any
) -> _T:
    """``read(argument)`` off the event loop, retried until the store answers: a recovery
    never goes on from a partial history."""
    delay = 0.5
    while True:
        try:
            return await loop.run_in_executor(None, read, argument)
        except SQLAlchemyError as error:
            log.warning("reading the event history failed, retrying in %.1fs: %s", delay, error)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 30.0)


def _retrieved(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()


def _one_by_one(send: Send) -> SendMany:
    """``SendMany`` over a one-record ``send`` (that picks the partition itself)."""

    async def send_many(topic: str, records: Sequence[Record]) -> list[Any]:
        return [await send(topic, key, value) for _, key, value in records]

    return send_many


def _settle(done: asyncio.Future[None], deliveries: asyncio.Future[Any]) -> None:
    if done.done():
        return
    if deliveries.cancelled():
        done.cancel()
    elif deliveries.exception() is not None:
        done.set_exception(deliveries.exception())  # type: ignore[arg-type]
    else:
        done.set_result(None)


# Where a message came in: (topic, partition, offset).
Place = tuple[str, int, int]


def _mark_places(
    updates: list[LeadUpdate], facts: list[tuple[str, Fact]], place: Callable[[int], Place]
) -> None:
    """Give each new lead_events row the place of a message that brought its event: the store
    dead-letters a copy there when another lead keeps that event_id."""
    if not any(update.snapshot.events for update in updates):
        return
    first: dict[tuple[str, str], int] = {}
    for at, (lead_id, fact) in enumerate(facts):
        first.setdefault((lead_id, fact.event_id), at)
    for update in updates:
        for row in update.snapshot.events:
            found = first.get((update.lead_id, row["event_id"]))
            if found is not None:
                row[ORIGIN] = place(found)


# A dead letter of the event at an index in the batch: its own message, or (``copy``) another
# copy of it, written back as event JSON, at that message's place.
Refuse = Callable[[int, Rejection, Fact | None], DeadLetter]


def _conflict_letter(
    refuse: Refuse, index: int, copy: Fact, facts: list[tuple[str, Fact]]
) -> DeadLetter:
    """The dead letter of a losing copy: its own message when it came at ``index``, else the
    copy written back at the place of the message that displaced it."""
    own = facts[index][1] is copy
    error = (
        f"event_id {copy.event_id!r} was seen with other content; the copy whose canonical "
        "JSON sorts first is kept"
    )
    return refuse(index, Rejection(CONFLICTING_DUPLICATE, error), None if own else copy)


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
