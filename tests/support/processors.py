"""A batch processor over fakes, and a worker on a real store, for the processor tests."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from leadflow.agents.fold import FoldConfig
from leadflow.agents.history import StoreHistory
from leadflow.agents.metrics import Metrics
from leadflow.agents.partitioning import partition_of
from leadflow.agents.processor import Incoming, LeadProcessor
from leadflow.pipeline.settings import Settings
from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.errors import PermanentStoreError
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks import SqlSink
from leadflow.sinks.models import TABLES
from tests.support.golden import load_scenarios
from tests.support.queries import table_rows

PARTITIONS = 4


NAMES = Settings().topic_names()


class Sink:
    """Records each write; the batch numbered ``fail_at`` raises a permanent error."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.writes: list[list[str]] = []
        self.events: list[str] = []

    def write_batch(
        self, snapshots: Sequence[LeadSnapshot], dead_letters: Sequence[DeadLetter], now: datetime
    ) -> int:
        number = len(self.writes)
        self.writes.append([s.lead_id for s in snapshots])
        self.events.append(f"store {number}")
        if number == self.fail_at:
            raise PermanentStoreError("the table is gone")
        return len(snapshots)

    def close(self) -> None:
        pass


def created(lead_id: str) -> Incoming:
    value = (
        f'{{"event_id":"{lead_id}-c","event_type":"lead.created","lead_id":"{lead_id}",'
        '"occurred_at":"2026-05-01T10:00:00Z","source":"web"}'
    ).encode()
    return Incoming(NAMES.marketing, partition_of(lead_id, PARTITIONS), 0, value)


def processor(sink: Sink, send: Any) -> LeadProcessor:
    return LeadProcessor(
        names=NAMES,
        partitions=PARTITIONS,
        partition_counts={NAMES.marketing: PARTITIONS, NAMES.sales: PARTITIONS},
        config=FoldConfig(86_400.0, frozenset()),
        table={},
        sink=sink,
        send=send,
        metrics=Metrics.create(),
    )


def run(body: Any) -> Any:
    return asyncio.run(asyncio.wait_for(body(), timeout=20))


class Rekeyed:
    """The re-keying topic of one worker: what it sends there, to be read back by it."""

    def __init__(self) -> None:
        self.pending: list[Incoming] = []
        self.sent = 0
        self.records: list[tuple[str, bytes]] = []  # (topic, value) of every record sent

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        self.records.append((topic, value))
        if topic == NAMES.rekeyed and key is not None:
            partition = partition_of(key.decode(), PARTITIONS)
            self.pending.append(Incoming(topic, partition, self.sent, value))
            self.sent += 1
        return await _sent(topic, key, value)

    def take(self) -> list[Incoming]:
        taken, self.pending = self.pending, []
        return taken


# Each worker's re-keying topic: ``feed`` reads it back, as the worker's rekeyed agent would.
REKEYED: weakref.WeakKeyDictionary[LeadProcessor, Rekeyed] = weakref.WeakKeyDictionary()


def worker(engine: Engine, table: dict[str, bytes], *, history: bool = True) -> LeadProcessor:
    rekeyed = Rekeyed()
    lead = LeadProcessor(
        names=NAMES,
        partitions=PARTITIONS,
        partition_counts={NAMES.marketing: PARTITIONS, NAMES.sales: PARTITIONS},
        config=CONFIG,
        table=table,
        sink=SqlSink(engine),
        send=rekeyed.send,
        metrics=Metrics.create(),
        history=StoreHistory(engine) if history else None,
    )
    REKEYED[lead] = rekeyed
    return lead


def feed(lead: LeadProcessor, batch: list[Incoming], *, rekeyed: bool = True) -> None:
    """Each five messages of ``batch`` in turn, then (``rekeyed``) whatever the worker sent to
    its re-keying topic (a retraction, a forwarded event), until it sends nothing more."""

    async def body() -> None:
        for start in range(0, len(batch), 5):
            await (await lead.handle_input(batch[start : start + 5]))
        if rekeyed:
            await drain(lead)

    run(body)


async def drain(lead: LeadProcessor) -> None:
    """Read back what a :func:`worker` sent to its re-keying topic, until it sends nothing."""
    rekeyed = REKEYED.get(lead)
    while rekeyed is not None and rekeyed.pending:
        await (await lead.handle_rekeyed(rekeyed.take()))


CONFIG = FoldConfig(24 * 3600.0, frozenset({"not_now", "nurture", "no_budget", "timing"}))


async def _sent(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


ALL = set(range(PARTITIONS))


def messages() -> list[Incoming]:
    """Every golden scenario's messages, each on its lead's partition, offsets in order."""
    out = []
    for offset, message in enumerate(m for s in SCENARIOS for m in s.published):
        value = message.get("value")
        raw = message["raw"].encode() if "raw" in message else json.dumps(value).encode()
        lead_id = value.get("lead_id") if isinstance(value, dict) else None
        partition = partition_of(lead_id, PARTITIONS) if isinstance(lead_id, str) else 0
        topic = NAMES.marketing if message["topic"] == "marketing" else NAMES.sales
        out.append(Incoming(topic, partition, offset, raw))
    return out


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    tables = {name: table_rows(engine, name) for name in TABLES}
    return {
        name: [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in rows]
        for name, rows in tables.items()
    }


SCENARIOS = load_scenarios()


WALL_CLOCK = ("updated_at", "received_at")
