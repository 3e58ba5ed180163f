"""Issue #5: crash safety, store outages, broker restarts, replay and backfill, limits.

Every test runs real `leadflow worker` processes against a fresh embedded broker and compares
the store with the pure fold over every message sent (tests/faults.py).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.kafka.topics import ensure_topics
from leadflow.pipeline.publish.simulate import SimMessage, simulate
from tests.support.faults import (
    TcpProxy,
    assert_store_equals,
    dump,
    expected_of,
    metric,
    publish_positions,
    sigkill,
    store_totals,
    wait_for,
    wait_store,
)
from tests.support.fixtures import WorkerFactory, settings_for
from tests.support.traffic import bootstrap, kinds, raw, sim

pytestmark = [pytest.mark.broker, pytest.mark.slow]


# -- 1. crash safety ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_sigkill_twice_mid_stream_then_restart_equals_the_fold(
    broker: EmbeddedBroker, pg_schema_url: str, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    messages = sim(2000, seed=51, now=now)
    expected = expected_of(kinds(messages), now)
    url = pg_schema_url
    kills = 0

    first = start_worker(url)
    publish_positions(bootstrap(broker), raw(messages))
    # Kill 1: right after a store write returned (before or during the emit and table write).
    wait_for(
        "a few store writes",
        lambda: metric(first, "leadflow_sink_write_seconds_count") >= 3,
        timeout=60,
        every=0.02,
    )
    sigkill(first)
    kills += 1
    mid = store_totals(url)
    assert 0 < mid[0] < expected.events, f"kill 1 was not mid-stream: {mid}"

    # Kill 2: while the store write waits inside its transaction. The test holds an ACCESS
    # EXCLUSIVE lock on lead_lifecycle, so the worker's write blocks for sure.
    locker = create_engine(url, poolclass=NullPool)
    with locker.connect() as conn:
        conn.execute(text("LOCK TABLE lead_lifecycle IN ACCESS EXCLUSIVE MODE"))
        second = start_worker(url)

        def write_waits() -> bool:
            with locker.connect() as probe:
                waiting = probe.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query ILIKE '%lead_lifecycle%' AND pid <> pg_backend_pid()"
                        " AND datname = current_database()"
                    )
                ).scalar_one()
            return bool(waiting)

        wait_for("the worker's write to wait on the lock", write_waits, timeout=60, every=0.1)
        sigkill(second)
        kills += 1
        conn.rollback()
    locker.dispose()
    assert store_totals(url) == mid, "the killed write must not have committed"

    third = start_worker(url)
    took = wait_store(url, expected, timeout=120, workers=[third])
    assert_store_equals(url, expected)
    print(
        f"\ncrash: {len(messages)} messages, 2000 leads, {expected.events} events, "
        f"{kills} kills survived, caught up {took:.1f}s after the last restart"
    )


@pytest.mark.postgres
def test_two_workers_one_killed_the_survivor_takes_over(
    broker: EmbeddedBroker, pg_schema_url: str, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    messages = sim(500, seed=52, now=now)
    expected = expected_of(kinds(messages), now)
    url = pg_schema_url
    survivor = start_worker(url)
    victim = start_worker(url)
    # Both in the group (each owns partitions) before the traffic starts.
    wait_for("both workers ready", lambda: ready(survivor) and ready(victim), timeout=60)
    publish_positions(bootstrap(broker), raw(messages))
    wait_for(
        "the victim to process events",
        lambda: metric(victim, "leadflow_events_total") >= 200,
        timeout=60,
        every=0.02,
    )
    sigkill(victim)
    mid = store_totals(url)
    assert mid[0] < expected.events, f"the kill came after the end: {mid}"
    took = wait_store(url, expected, timeout=90, workers=[survivor])
    assert_store_equals(url, expected)
    print(
        f"\ntwo workers: victim killed at {mid[0]}/{expected.events} events, "
        f"survivor done {took:.1f}s later"
    )


def ready(worker: object) -> bool:
    body = worker._get("/health")  # type: ignore[attr-defined]
    return body is not None and bool(json.loads(body).get("ready"))


# -- 2. store outage and permanent store errors -------------------------------------------------


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


@pytest.mark.postgres
def test_postgres_unreachable_for_30s_retries_and_acks_nothing_unwritten(
    broker: EmbeddedBroker, pg_schema_url: str, start_worker: WorkerFactory
) -> None:
    from kafka import KafkaAdminClient

    now = datetime.now(UTC)
    before = sim(300, seed=53, now=now, key_mode="lead_id")
    during = sim(300, seed=54, now=now, key_mode="lead_id")
    url = pg_schema_url
    target = urlsplit(url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    try:
        worker = start_worker(_via(url, proxy.port), LEADFLOW_STORE_RETRY_MAX_SECONDS="4")
        publish_positions(bootstrap(broker), raw(before))
        wait_store(url, expected_of(kinds(before), now), timeout=60, workers=[worker])

        proxy.cut()
        cut_at = time.monotonic()
        positions = publish_positions(bootstrap(broker), raw(during))
        wait_for(
            "a failed store write",
            lambda: metric(worker, "leadflow_sink_errors_total") >= 2,
            timeout=30,
        )
        # The store is frozen while it is unreachable: whatever offsets the worker commits now
        # must already be in it (per message: dead letters by position, events by lead count).
        frozen = dump(url)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap(broker))
        time.sleep(3)  # several commit intervals (1 s)
        committed = {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in admin.list_group_offsets("leadflow")["leadflow"].items()
        }
        admin.close()
        assert dump(url) == frozen
        _assert_committed_are_stored(frozen, committed, before, during, positions, now)
        assert worker.proc.poll() is None, "the worker must survive the outage"
        time.sleep(max(0.0, 30 - (time.monotonic() - cut_at)))
        outage = time.monotonic() - cut_at
        proxy.restore()

        expected = expected_of(kinds(before + during), now)
        took = wait_store(url, expected, timeout=60, workers=[worker])
        assert_store_equals(url, expected)
        errors = metric(worker, "leadflow_sink_errors_total")
        assert errors >= 2
        log = worker.log_path.read_text(errors="replace")
        assert "store write failed, retrying" in log
        print(
            f"\noutage: {outage:.0f}s survived, {errors:.0f} failed writes retried, "
            f"caught up {took:.1f}s after the store came back"
        )
    finally:
        proxy.close()


def _assert_committed_are_stored(
    frozen: dict[str, list[dict[str, object]]],
    committed: dict[tuple[str, int], int],
    before: list[SimMessage],
    during: list[SimMessage],
    positions: list[tuple[str, int, int]],
    now: datetime,
) -> None:
    letters = {(r["topic"], r["partition"], r["offset"]) for r in frozen["dead_letters"]}
    counts = {r["lead_id"]: r["event_count"] for r in frozen["lead_lifecycle"]}
    acked = [
        m
        for m, (topic, partition, offset) in zip(during, positions, strict=True)
        if offset < committed.get((topic, partition), -1)
    ]
    acked_letters = [
        pos
        for m, pos in zip(during, positions, strict=True)
        if not m.valid and pos[2] < committed.get(pos[:2], -1)
    ]
    assert set(acked_letters) <= letters, "an acked invalid message is not in dead_letters"
    needed = expected_of(kinds(before + acked), now)
    short = {
        lead: (counts.get(lead, 0), snap.lifecycle["event_count"])
        for lead, snap in needed.leads.items()
        if counts.get(lead, 0) < snap.lifecycle["event_count"]
    }
    assert not short, f"offsets committed for events the store does not hold: {short}"


def test_a_dropped_table_stops_the_worker_with_one_clear_line(
    broker: EmbeddedBroker, database_url: str, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    first = sim(30, seed=55, now=now)
    worker = start_worker(database_url)
    publish_positions(bootstrap(broker), raw(first))
    wait_store(database_url, expected_of(kinds(first), now), timeout=60, workers=[worker])
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE lead_lifecycle"))
    engine.dispose()
    publish_positions(bootstrap(broker), raw(sim(30, seed=56, now=now)))
    code = worker.proc.wait(45)
    assert code != 0
    text_ = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", worker.log_path.read_text(errors="replace"))
    lines = [line.strip() for line in text_.splitlines() if line.strip()]
    final = [line for line in lines if line.startswith("leadflow: ")]
    assert len(final) == 1 and final[0] == lines[-1], lines[-5:]
    assert re.match(
        r"leadflow: worker stopped: the store refused a write .*lead_lifecycle", final[0]
    )
    assert not any("retrying in" in line for line in lines), "a permanent error must not be retried"


# -- 3. broker restart ---------------------------------------------------------------------------


def test_worker_survives_a_broker_restart_and_processes_new_events(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = sim(50, seed=57, now=now)
    worker = start_worker(url)
    publish_positions(bootstrap(broker), raw(first))
    wait_store(url, expected_of(kinds(first), now), timeout=60, workers=[worker])
    stored_before = store_totals(url)

    broker.stop()
    time.sleep(2)
    broker.start()
    ensure_topics(settings_for(broker, url))  # the embedded broker forgot every topic
    second = sim(50, seed=58, now=now)
    publish_positions(bootstrap(broker), raw(second))
    took = wait_for(
        "new events in the store",
        lambda: store_totals(url)[0] > stored_before[0] + 50,
        timeout=60,
    )
    assert worker.proc.poll() is None, "the worker must survive the broker restart"
    assert ready(worker)
    print(f"\nbroker restart: new events stored {took:.1f}s after publishing")
    # The new broker's offsets start again at 0: the rebalance after it clears Faust's read
    # offsets, so nothing below the old ones is dropped.
    expected = expected_of(kinds(first + second), now)
    wait_store(url, expected, timeout=30, workers=[worker])
    assert_store_equals(url, expected)


# -- 5. replay and backfill ----------------------------------------------------------------------


def test_replay_is_identical_and_a_backfill_restates_history(
    broker: EmbeddedBroker, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    history = sim(300, seed=59, now=now)
    worker = start_worker(url)
    publish_positions(bootstrap(broker), raw(history))
    wait_store(url, expected_of(kinds(history), now), timeout=60, workers=[worker])
    worker.wait_processed(len(history), timeout=30)
    once = dump(url)

    publish_positions(bootstrap(broker), raw(history))  # the same history again
    worker.wait_processed(2 * len(history), timeout=60)
    twice = dump(url)
    # Re-published invalid messages are new messages (new offsets): one more dead letter each.
    letters = twice.pop("dead_letters")
    assert len(letters) == 2 * len(once["dead_letters"])
    assert {k: v for k, v in once.items() if k != "dead_letters"} == twice, (
        "a replay changed a row (updated_at included)"
    )
    once = dump(url)
    # A new consumer group reads everything from the beginning into the same store.
    other = start_worker(url, LEADFLOW_APP_ID="leadflow-replay")
    other.wait_processed(2 * len(history), timeout=90)
    assert dump(url) == once, "a replay by another group changed a row"
    other.stop()

    # Backfill: events a year and more older than anything stored, for the same leads (a
    # first lead.created from another source, old touches) and for leads never seen.
    old: list[SimMessage] = []
    for m in history[:400]:
        if not m.valid or b'"lead.created"' not in m.value:
            continue
        body = m.value.replace(b'"event_id":"', b'"event_id":"old-')
        body = re.sub(rb'"occurred_at":"[^"]+"', b'"occurred_at":"2024-02-29T12:00:00+05:30"', body)
        body = re.sub(rb'"source":"[^"]+"', b'"source":"trade_show"', body)
        old.append(SimMessage(m.topic_kind, m.key, body, m.lead_id, True))
    old += simulate(100, seed=60, start=now - timedelta(days=800), key_mode="none")
    publish_positions(bootstrap(broker), raw(old))
    expected = expected_of(kinds(history + history + old), now)
    wait_store(url, expected, timeout=90, workers=[worker])
    assert_store_equals(url, expected)
    restated = sum(1 for s in expected.leads.values() if s.lifecycle["source"] == "trade_show")
    assert restated > 10
