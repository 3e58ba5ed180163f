"""``leadflow rebuild`` for tests on a PostgreSQL database that other tests write too."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow.agents.batch import fold_batch
from leadflow.agents.facts import Fact
from leadflow.agents.fold import FoldConfig
from leadflow.pipeline.rebuild import rebuild
from leadflow.pipeline.sla_store import check_sla_policies
from leadflow.sinks import SqlSink, make_engine
from leadflow.sinks.models import TABLES
from leadflow.sinks.rebuild import Moved, RebuildRefused
from tests.support.golden import facts_of, load_scenarios
from tests.support.queries import table_rows

WAIT_SECONDS = 30


def rebuild_when_free(
    url: str, config: FoldConfig, now: datetime | None = None, quiet: timedelta = timedelta(0)
) -> Moved:
    """``rebuild``, retried while the writers' lock is taken: advisory locks are per
    PostgreSQL database, so another test's store in the same database can hold it."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            return rebuild(url, config, now, quiet=quiet)
        except RebuildRefused as refused:
            if "a worker is writing" not in str(refused) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run_pipeline(url: str, config: FoldConfig, batch: int = 7) -> None:
    """What a worker does with ``events()`` in batches: record its SLA fingerprint, fold, write."""
    state: dict[str, bytes] = {}
    engine = make_engine(url)
    check_sla_policies(engine, config)
    sink = SqlSink(engine)
    todo = events()
    try:
        for start in range(0, len(todo), batch):
            result = fold_batch(todo[start : start + batch], state.get, config, NOW)
            for update in result.updates:
                state[update.lead_id] = update.state
            sink.write_batch([u.snapshot for u in result.updates], [], NOW)
    finally:
        sink.close()


NOW = datetime(2026, 6, 1, tzinfo=UTC)


def events() -> list[tuple[str, Fact]]:
    """The golden scenarios' events, each scenario's lead under a few ids."""
    return [
        (f"{s.lead_id}-{copy}", fact._replace(event_id=f"{fact.event_id}-{copy}"))
        for s in SCENARIOS
        for copy in range(3)
        for fact in facts_of(s)
    ]


SCENARIOS = load_scenarios()


def dump(url: str, *, updated: bool = True) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(url)
    try:
        tables = {name: table_rows(engine, name) for name in TABLES}
    finally:
        engine.dispose()
    if not updated:
        for name in ("lead_lifecycle", "store_settings"):
            for row in tables[name]:
                row.pop("updated_at")
    return tables
