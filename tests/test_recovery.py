"""A worker whose Kafka state is behind the store refolds its leads from lead_events before it
folds anything for them (contract section 7), and never writes a row from a partial history."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from leadflow.agents.fold import FoldConfig
from leadflow.agents.history import StoreHistory
from leadflow.agents.metrics import Metrics
from leadflow.agents.partitioning import partition_of
from leadflow.agents.processor import Incoming, LeadProcessor
from leadflow.sinks import SqlSink, make_engine, upgrade
from leadflow.sinks.models import TABLES
from tests.support.golden import load_scenarios
from tests.support.queries import table_rows
from tests.test_processor_stages import NAMES, PARTITIONS, run

SCENARIOS = load_scenarios()
CONFIG = FoldConfig(24 * 3600.0, frozenset({"not_now", "nurture", "no_budget", "timing"}))
ALL = set(range(PARTITIONS))
WALL_CLOCK = ("updated_at", "received_at")


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


async def _sent(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


def worker(engine: Engine, table: dict[str, bytes], *, history: bool = True) -> LeadProcessor:
    return LeadProcessor(
        names=NAMES,
        partitions=PARTITIONS,
        partition_counts={NAMES.marketing: PARTITIONS, NAMES.sales: PARTITIONS},
        config=CONFIG,
        table=table,
        sink=SqlSink(engine),
        send=_sent,
        metrics=Metrics.create(),
        history=StoreHistory(engine) if history else None,
    )


def feed(lead: LeadProcessor, batch: list[Incoming]) -> None:
    async def body() -> None:
        for start in range(0, len(batch), 5):
            await (await lead.handle_input(batch[start : start + 5]))

    run(body)


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    tables = {name: table_rows(engine, name) for name in TABLES}
    return {
        name: [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in rows]
        for name, rows in tables.items()
    }


@pytest.fixture
def stores(database_url: str, other_url: str) -> Iterator[list[Engine]]:
    """The store under test and a reference store of the same kind."""
    engines = []
    try:
        for url in (database_url, other_url):
            upgrade(url)
            engines.append(make_engine(url))
        yield engines
    finally:
        for engine in engines:
            engine.dispose()


def lost_state_then_rest(engine: Engine, *, history: bool) -> LeadProcessor:
    """Half the traffic through one worker; its state lost; the rest through a new worker."""
    traffic = messages()
    half = len(traffic) // 2
    first = worker(engine, {})
    feed(first, traffic[:half])
    first.close()
    second = worker(engine, {}, history=history)  # an empty changelog: a new broker
    run(lambda: second.recover(ALL))
    feed(second, traffic[half:])
    if history:
        feed(second, traffic)  # at-least-once: everything read again changes nothing
    return second


def test_a_lost_changelog_is_refolded_from_the_store(
    stores: list[Engine], caplog: pytest.LogCaptureFixture
) -> None:
    engine, reference = stores
    with caplog.at_level(logging.WARNING, logger="leadflow.agents"):
        second = lost_state_then_rest(engine, history=True)
    fresh = worker(reference, {})
    feed(fresh, messages())
    fresh.close()
    recovered = second.metrics.registry.get_sample_value("leadflow_recovered_leads_total")
    second.close()
    assert dump(engine) == dump(reference)
    assert recovered and recovered > 0
    lines = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"recovered {int(recovered)} leads")


def test_without_the_history_the_store_keeps_a_stale_row(stores: list[Engine]) -> None:
    engine, reference = stores
    lost_state_then_rest(engine, history=False).close()
    fresh = worker(reference, {})
    feed(fresh, messages())
    fresh.close()
    assert dump(engine)["lead_lifecycle"] != dump(reference)["lead_lifecycle"]


def test_a_state_in_step_with_the_store_recovers_nothing(stores: list[Engine]) -> None:
    engine, _ = stores
    table: dict[str, bytes] = {}
    lead = worker(engine, table)
    feed(lead, messages())
    assert run(lambda: lead.recover(ALL)) == 0
    lead.close()
