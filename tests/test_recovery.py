"""A worker whose Kafka state is behind the store refolds its leads from lead_events before it
folds anything for them (contract section 7), and never writes a row from a partial history."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from leadflow.agents.processor import LeadProcessor
from leadflow.sinks import make_engine, upgrade
from tests.support.processors import ALL, dump, feed, messages, run, worker


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
