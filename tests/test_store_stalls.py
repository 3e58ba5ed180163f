"""A store that stops answering is visible: statement timeouts, the oldest unwritten batch."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from leadflow.pipeline.faust.app import STORE_STALLED_SECONDS
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks import engine as engine_module
from leadflow.sinks import make_engine
from tests.support.faults import metric, publish_positions, wait_for
from tests.support.fixtures import WorkerFactory
from tests.support.processors import created, processor, run
from tests.support.traffic import bootstrap, raw, sim


@pytest.mark.postgres
def test_postgres_statements_time_out(pg_schema_url: str, monkeypatch: Any) -> None:
    engine = make_engine(pg_schema_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "20s"
    finally:
        engine.dispose()
    monkeypatch.setattr(engine_module, "PG_STATEMENT_TIMEOUT_MS", 300)
    engine = make_engine(pg_schema_url)
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="statement timeout"), engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 3
    finally:
        engine.dispose()


# Counting to 5,000,000 takes SQLite about a second: far past the test's 50 ms deadline.
ENDLESS = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5000000) "
    "SELECT count(*) FROM n"
)


def test_sqlite_statements_time_out_except_where_switched_off(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_STATEMENT_TIMEOUT_MS", 50)
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="interrupted"), engine.connect() as conn:
            conn.exec_driver_sql(ENDLESS)
        assert time.monotonic() - started < 0.5
        with engine.connect() as conn, conn.begin():
            engine_module.no_statement_timeout(conn)
            assert conn.exec_driver_sql(ENDLESS).scalar() == 5_000_000
        with pytest.raises(OperationalError, match="interrupted"), engine.connect() as conn:
            conn.exec_driver_sql(ENDLESS)  # the next transaction has its deadline again
    finally:
        engine.dispose()


class StuckSink:
    """A store that does not answer until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def write_batch(
        self, snapshots: Sequence[LeadSnapshot], dead_letters: Sequence[DeadLetter], now: datetime
    ) -> int:
        self.release.wait(20)
        return len(snapshots)

    def close(self) -> None:
        self.release.set()


def test_the_oldest_unwritten_batch_has_an_age() -> None:
    sink = StuckSink()

    async def body() -> tuple[float, float, float]:
        async def send(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        lead = processor(sink, send)  # type: ignore[arg-type]
        idle = lead.oldest_unwritten_seconds()
        pending = await lead.handle_input([created("A")])
        await asyncio.sleep(0.5)
        waited = lead.metrics.registry.get_sample_value(
            "leadflow_sink_oldest_unwritten_batch_seconds"
        )
        sink.release.set()
        await pending
        after = lead.oldest_unwritten_seconds()
        lead.close()
        return idle, waited or 0.0, after

    idle, waited, after = run(body)
    assert idle == 0.0
    assert waited >= 0.5
    assert after == 0.0


def health(worker: Any) -> tuple[int, dict[str, Any]]:
    """/health's status and body, 503 included."""
    try:
        with urllib.request.urlopen(worker.base_url + "/health", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_health_reports_a_store_that_stopped_answering(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    worker = start_worker(url)
    wait_for("the worker ready", lambda: health(worker)[0] == 200, timeout=60)
    assert health(worker)[1]["store"]["state"] == "ok"
    blocker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: every write waits
        publish_positions(bootstrap(broker), raw(sim(20, seed=3, now=datetime.now(UTC))))
        wait_for("/health to see the store stall", lambda: health(worker)[0] == 503, timeout=90)
        body = health(worker)[1]
        assert body["store"]["state"] == "stalled"
        assert body["store"]["oldest_unwritten_batch_seconds"] > STORE_STALLED_SECONDS
        assert (metric(worker, "leadflow_sink_oldest_unwritten_batch_seconds") or 0) > 30
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    wait_for("/health to recover", lambda: health(worker)[0] == 200, timeout=90)
    assert health(worker)[1]["store"] == {"state": "ok", "oldest_unwritten_batch_seconds": 0.0}
