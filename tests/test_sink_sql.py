"""The SQL sink against real SQLite and PostgreSQL stores."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect, text

from leadflow.agents.facts import Fact
from leadflow.agents.fold import FoldConfig, fold
from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.errors import PermanentStoreError, StoreError
from leadflow.schemas.records import LeadSnapshot
from leadflow.schemas.vocabulary import TYPE_RANK
from leadflow.sinks import SqlSink, make_engine, upgrade
from leadflow.sinks.engine import WRITE_OPTION
from leadflow.sinks.migrate import alembic_config
from leadflow.sinks.models import TABLES, Base
from leadflow.sinks.store import AGGREGATE_LOCK_ID
from tests.support.golden import (
    Scenario,
    assert_rows_match,
    config_of,
    facts_of,
    load_scenarios,
    parse_time,
)
from tests.support.queries import (
    funnel_groupby,
    funnel_rows,
    read_lead,
    read_sla,
    read_transitions,
    revenue_groupby,
    revenue_rows,
    table_rows,
)

SCENARIOS = load_scenarios()
BY_NAME = {s.name[:2]: s for s in SCENARIOS}
T1 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@dataclass
class Store:
    url: str
    engine: Engine
    sink: SqlSink


@pytest.fixture
def store(migrated_url: str) -> Iterator[Store]:
    engine = make_engine(migrated_url)
    sink = SqlSink(engine)
    yield Store(migrated_url, engine, sink)
    sink.close()


# -- helpers ----------------------------------------------------------------------------------


def snapshot_of(
    scenario: Scenario,
    lead_id: str | None = None,
    *,
    drop_type: str | None = None,
    keep: int | None = None,
) -> LeadSnapshot:
    """The scenario's lead folded, optionally under another id, without one event type or
    with only its first ``keep`` published events."""
    facts = facts_of(scenario)
    if drop_type is not None:
        facts = [f for f in facts if f.rank != TYPE_RANK[drop_type]]
    if keep is not None:
        facts = facts[:keep]
    return fold(lead_id or scenario.lead_id, facts, config_of(scenario), scenario.now)


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    return {name: table_rows(engine, name) for name in TABLES}


def assert_aggregates_consistent(engine: Engine) -> None:
    assert funnel_rows(engine) == funnel_groupby(engine)
    assert revenue_rows(engine) == revenue_groupby(engine)


def expected_funnel(scenario: Scenario) -> set[tuple[date, str, str, str, int]]:
    life = scenario.expected["lead_lifecycle"]
    src, camp = life["source"] or "unknown", life["campaign_id"] or "unknown"
    counts = Counter(
        (parse_time(t["entered_at"]).astimezone(UTC).date(), src, camp, t["stage"])
        for t in scenario.expected["lead_stage_transitions"]
    )
    return {(*key, n) for key, n in counts.items()}


def expected_revenue(scenario: Scenario) -> set[tuple[date, str, str, str, int, Decimal]]:
    life = scenario.expected["lead_lifecycle"]
    if life["stage"] != "won":
        return set()
    day = parse_time(life["won_at"]).astimezone(UTC).date()
    amount = Decimal(str(life["amount"])).quantize(Decimal("0.01"))
    src, camp = life["source"] or "unknown", life["campaign_id"] or "unknown"
    return {(day, src, camp, life["currency"], 1, amount)}


def dead_letter(offset: int, payload: str = "{oops") -> DeadLetter:
    return DeadLetter(
        "marketing-leads", 3, offset, "invalid_json", "the message is not JSON", payload, T1
    )


# -- golden scenarios -------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_golden_scenario_rows_in_the_store(store: Store, scenario: Scenario) -> None:
    snap = snapshot_of(scenario)
    written = store.sink.write_batch([snap], [], T1)
    expected = scenario.expected
    created = [m["value"] for m in scenario.published if m["value"]["event_type"] == "lead.created"]
    contacts = 1 if any(v.get("email") or v.get("company") for v in created) else 0
    rows = len(expected["lead_stage_transitions"]) + len(expected["handoff_sla"])
    assert written == 1 + rows + contacts

    lead = read_lead(store.engine, scenario.lead_id)
    assert lead is not None
    assert_rows_match(lead, expected["lead_lifecycle"], "lead_lifecycle")
    assert (lead["version"], lead["updated_at"]) == (snap.version, T1)
    transitions = read_transitions(store.engine, scenario.lead_id)
    assert len(transitions) == len(expected["lead_stage_transitions"])
    pairs = zip(transitions, expected["lead_stage_transitions"], strict=True)
    for i, (got, want) in enumerate(pairs):
        assert_rows_match(got, want, f"transition {i}")
    sla = read_sla(store.engine, scenario.lead_id)
    assert len(sla) == len(expected["handoff_sla"])
    for i, (got, want) in enumerate(zip(sla, expected["handoff_sla"], strict=True)):
        assert_rows_match(got, want, f"handoff_sla {i}")
    assert funnel_rows(store.engine) == expected_funnel(scenario)
    assert revenue_rows(store.engine) == expected_revenue(scenario)
    assert_aggregates_consistent(store.engine)


# -- idempotency and versions -----------------------------------------------------------------


def all_scenario_snapshots() -> list[LeadSnapshot]:
    return [snapshot_of(s, f"{s.name[:2]}-{s.lead_id}") for s in SCENARIOS]


def test_replaying_a_batch_changes_no_row(store: Store) -> None:
    batch = all_scenario_snapshots()
    letters = [dead_letter(1), dead_letter(2)]
    assert store.sink.write_batch(batch, letters, T1) > 0
    before = dump(store.engine)
    assert store.sink.write_batch(batch, letters, T2) == 0
    for snap in batch:  # and one lead per batch, another split
        assert store.sink.write_batch([snap], [], T2) == 0
    assert dump(store.engine) == before
    assert_aggregates_consistent(store.engine)


def test_an_older_version_never_overwrites_a_newer_one(store: Store) -> None:
    scenario = BY_NAME["04"]
    newer = snapshot_of(scenario)
    older = snapshot_of(scenario, keep=len(scenario.published) - 2)
    assert older.version < newer.version and older.transitions != newer.transitions
    store.sink.write_batch([newer], [], T1)
    before = dump(store.engine)
    assert store.sink.write_batch([older], [], T2) == 0
    assert dump(store.engine) == before


@pytest.mark.parametrize("order", ["newer_first", "older_first"])
def test_a_batch_keeps_the_highest_version_of_a_lead(store: Store, order: str) -> None:
    scenario = BY_NAME["04"]
    newer = snapshot_of(scenario)
    older = snapshot_of(scenario, keep=3)
    batch = [newer, older] if order == "newer_first" else [older, newer]
    store.sink.write_batch(batch, [], T1)
    lead = read_lead(store.engine, scenario.lead_id)
    assert lead is not None and lead["version"] == newer.version
    assert read_transitions(store.engine, scenario.lead_id) == newer.transitions
    assert read_sla(store.engine, scenario.lead_id) == newer.sla
    assert_aggregates_consistent(store.engine)


def test_a_newer_version_replaces_transitions_and_sla_exactly(store: Store) -> None:
    scenario = BY_NAME["04"]
    for keep in range(1, len(scenario.published) + 1):
        snap = snapshot_of(scenario, keep=keep)
        store.sink.write_batch([snap], [], T1 + timedelta(minutes=keep))
        assert read_transitions(store.engine, scenario.lead_id) == snap.transitions
        assert read_sla(store.engine, scenario.lead_id) == snap.sla
        assert_aggregates_consistent(store.engine)


# -- late lead.created restates the aggregates ------------------------------------------------


def test_a_late_created_moves_funnel_rows_from_unknown(store: Store) -> None:
    scenario = BY_NAME["10"]
    store.sink.write_batch([snapshot_of(scenario, drop_type="lead.created")], [], T1)
    assert {row[1] for row in funnel_rows(store.engine)} == {"unknown"}
    assert_aggregates_consistent(store.engine)

    store.sink.write_batch([snapshot_of(scenario)], [], T2)
    assert funnel_rows(store.engine) == expected_funnel(scenario)
    assert all(row[1] == "paid_search" and row[2] == "C-late" for row in funnel_rows(store.engine))
    assert_aggregates_consistent(store.engine)


def test_a_late_created_moves_revenue_rows_from_unknown(store: Store) -> None:
    scenario = BY_NAME["01"]
    store.sink.write_batch([snapshot_of(scenario, drop_type="lead.created")], [], T1)
    early = revenue_rows(store.engine)
    assert len(early) == 1 and next(iter(early))[1] == "unknown"
    assert_aggregates_consistent(store.engine)

    store.sink.write_batch([snapshot_of(scenario)], [], T2)
    assert revenue_rows(store.engine) == expected_revenue(scenario)
    assert_aggregates_consistent(store.engine)


# -- property: aggregates equal their GROUP BY after every write ------------------------------

BASE = datetime(2026, 5, 1, tzinfo=UTC)
PROPERTY_CONFIG = FoldConfig(sla_seconds=86_400.0, recycle_reasons=frozenset({"not_now"}))
_examples = itertools.count()

event_spec = st.tuples(
    st.integers(0, 10),  # type rank
    st.integers(0, 3 * 24 - 1),  # hour offset: three UTC days
    st.sampled_from(["ads", "web"]),
    st.sampled_from(["C1", "C2", None]),
    st.sampled_from(["not_now", "spam"]),
    st.sampled_from(["100.00", "250.50"]),
    st.sampled_from(["EUR", "USD"]),
)


def make_fact(index: int, spec: tuple[int, int, str, str | None, str, str, str]) -> Fact:
    rank, hours, source, campaign, reason, amount, currency = spec
    ts = int((BASE + timedelta(hours=hours) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    fields: dict[str, Any] = {"ts": ts * 1_000_000, "rank": rank, "event_id": f"e{index}"}
    if rank == 0:
        fields.update(source=source, campaign_id=campaign)
    elif rank == 1:
        fields.update(campaign_id=campaign or "C3")
    elif rank in (2, 3):
        fields.update(score=50, campaign_id=campaign if rank == 3 else None)
    else:
        fields.update(owner_id="U1")
    if rank == 7:
        fields.update(reason=reason)
    if rank in (8, 9, 10):
        fields.update(opportunity_id="O1")
    if rank in (8, 9):
        fields.update(amount=amount, currency=currency)
    return Fact(**fields)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    leads=st.lists(st.lists(event_spec, min_size=1, max_size=6), min_size=1, max_size=3),
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 2), st.integers(1, 6)), min_size=1, max_size=4),
        min_size=1,
        max_size=5,
    ),
)
def test_aggregates_equal_their_group_by_after_every_write(
    store: Store,
    leads: list[list[tuple[int, int, str, str | None, str, str, str]]],
    batches: list[list[tuple[int, int]]],
) -> None:
    prefix = f"P{next(_examples)}"  # the store is shared by every example: fresh lead ids
    facts = [[make_fact(i, spec) for i, spec in enumerate(specs)] for specs in leads]
    now = BASE + timedelta(days=10)
    highest: dict[str, LeadSnapshot] = {}
    for batch in batches:
        snaps: list[LeadSnapshot] = []
        for lead_no, keep in batch:
            lead_facts = facts[lead_no % len(facts)]
            lead_id = f"{prefix}-{lead_no % len(facts)}"
            snap = fold(lead_id, lead_facts[:keep], PROPERTY_CONFIG, now)
            snaps.append(snap)
            if lead_id not in highest or snap.version > highest[lead_id].version:
                highest[lead_id] = snap
        store.sink.write_batch(snaps, [], now)
        assert_aggregates_consistent(store.engine)
    for lead_id, snap in highest.items():
        lead = read_lead(store.engine, lead_id)
        assert lead is not None and lead["version"] == snap.version
        assert read_transitions(store.engine, lead_id) == snap.transitions


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_writers_keep_the_aggregates_exact(store: Store) -> None:
    scenario = BY_NAME["01"]
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        sink = SqlSink(make_engine(store.url))
        try:
            for i in range(20):
                batch = [snapshot_of(scenario, f"{name}-{i}-{j}") for j in range(2)]
                sink.write_batch(batch, [], T1)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            sink.close()

    threads = [threading.Thread(target=worker, args=(f"W{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert_aggregates_consistent(store.engine)
    assert {row[4] for row in funnel_rows(store.engine)} == {4 * 20 * 2}


def test_a_writer_waits_for_another_writers_transaction(store: Store, backend: str) -> None:
    done = threading.Event()

    def write() -> None:
        store.sink.write_batch([snapshot_of(BY_NAME["01"])], [], T1)
        done.set()

    with store.engine.connect() as holder:
        holder = holder.execution_options(**{WRITE_OPTION: True})  # SQLite: BEGIN IMMEDIATE
        with holder.begin():
            if backend == "postgresql":
                lock = text("SELECT pg_advisory_xact_lock(:id)")
                holder.execute(lock, {"id": AGGREGATE_LOCK_ID})
            thread = threading.Thread(target=write)
            thread.start()
            assert not done.wait(0.5), "the write did not wait for the other writer"
        assert done.wait(10)
        thread.join()
    assert_aggregates_consistent(store.engine)


# -- dead letters -----------------------------------------------------------------------------


def test_dead_letters_are_idempotent_on_where_and_what(store: Store) -> None:
    assert store.sink.write_batch([], [dead_letter(7), dead_letter(8)], T1) == 2
    assert store.sink.write_batch([], [dead_letter(7, "other"), dead_letter(9)], T2) == 2
    assert store.sink.write_batch([], [dead_letter(7, "other"), dead_letter(9)], T2) == 0
    rows = table_rows(store.engine, "dead_letters")
    assert sorted((r["offset"], r["payload"]) for r in rows) == [
        (7, "other"),
        (7, "{oops"),
        (8, "{oops"),
        (9, "{oops"),
    ]
    assert {r["received_at"] for r in rows if r["offset"] == 8} == {T1}


# -- migrations and errors --------------------------------------------------------------------


def test_upgrading_twice_is_a_no_op_and_matches_the_models(store: Store) -> None:
    store.sink.write_batch([snapshot_of(BY_NAME["01"])], [dead_letter(1)], T1)
    before = dump(store.engine)
    tables = set(inspect(store.engine).get_table_names())
    upgrade(store.url)
    assert dump(store.engine) == before
    assert set(inspect(store.engine).get_table_names()) == tables
    with store.engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [head]
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_a_dropped_table_is_a_permanent_error(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE lead_stage_transitions"))
    with pytest.raises(PermanentStoreError) as caught:
        store.sink.write_batch([snapshot_of(BY_NAME["01"])], [], T1)
    assert "\n" not in str(caught.value) and "lead_stage_transitions" in str(caught.value)


def test_an_unreachable_store_is_a_retryable_error(backend: str, tmp_path: Any) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'store.db'}"
    else:
        url = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    sink = SqlSink(make_engine(url))
    with pytest.raises(StoreError) as caught:
        sink.write_batch([snapshot_of(BY_NAME["01"])], [], T1)
    assert not isinstance(caught.value, PermanentStoreError)
    assert "\n" not in str(caught.value)
    sink.close()


def _wal_frames_of_a_touch_batch(url: str, *, with_index: bool) -> int:
    """Load 3,000 leads, then write one batch touching every third: the WAL frames it wrote."""
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        if not with_index:
            conn.exec_driver_sql("DROP INDEX ix_lead_lifecycle_stage_won_at")
    sink = SqlSink(engine)
    created = {i: make_fact(i, (0, i % 72, "ads", "C1", "", "", "")) for i in range(3_000)}
    for start in range(0, 3_000, 1_000):
        batch = [
            fold(f"L{i}", [created[i]], PROPERTY_CONFIG, T1) for i in range(start, start + 1_000)
        ]
        sink.write_batch(batch, [], T1)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    touch = (1, 80, "ads", "C2", "", "", "")
    batch = [
        fold(f"L{i}", [created[i], make_fact(10_000 + i, touch)], PROPERTY_CONFIG, T1)
        for i in range(0, 3_000, 3)
    ]
    sink.write_batch(batch, [], T2)
    with engine.connect() as conn:
        frames = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()[1]
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    sink.close()
    return int(frames)


def test_an_update_that_keeps_the_stage_leaves_the_stage_index_alone(tmp_path: Any) -> None:
    """Touches spread over a big table rewrite each lead's row, not its index entry: the batch
    dirties no page more than it would with no secondary index at all."""
    plain = _wal_frames_of_a_touch_batch(f"sqlite:///{tmp_path / 'plain.db'}", with_index=False)
    indexed = _wal_frames_of_a_touch_batch(f"sqlite:///{tmp_path / 'indexed.db'}", with_index=True)
    assert plain > 50  # the batch did write (about one page per lead's table page)
    assert indexed == plain


def test_a_stage_change_moves_the_lead_in_the_stage_index(store: Store, backend: str) -> None:
    created = make_fact(0, (0, 1, "ads", "C1", "", "", ""))
    mql = make_fact(1, (3, 2, "ads", "C1", "", "", ""))
    store.sink.write_batch([fold("L1", [created], PROPERTY_CONFIG, T1)], [], T1)
    store.sink.write_batch([fold("L1", [created, mql], PROPERTY_CONFIG, T1)], [], T2)
    # Read through the index itself: a stale entry would still say "lead".
    hint = " INDEXED BY ix_lead_lifecycle_stage_won_at" if backend == "sqlite" else ""
    query = f"SELECT stage, count(*) FROM lead_lifecycle{hint} WHERE stage IN ('lead', 'mql')"
    with store.engine.connect() as conn:
        by_stage = dict(conn.exec_driver_sql(query + " GROUP BY stage").all())
    assert by_stage == {"mql": 1}


def test_engine_settings(store: Store, backend: str) -> None:
    with store.engine.connect() as conn:
        if backend == "sqlite":
            pragmas: Sequence[str] = ("journal_mode", "busy_timeout", "foreign_keys", "mmap_size")
            values = [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in pragmas]
            assert values[:3] == ["wal", 30_000, 0]
            assert values[3] >= 2**28  # reads through a memory map (capped by SQLite's build)
        else:
            assert conn.exec_driver_sql("SHOW TIME ZONE").scalar() == "UTC"
    if backend == "postgresql":
        assert make_engine("postgresql://u@h/db").url.drivername == "postgresql+psycopg"
        assert store.engine.pool.size() == 5  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_postgres_connections_detect_a_vanished_peer(pg_schema_url: str) -> None:
    """A write to a host that vanished without a reset fails in bounded time, then retries."""
    from leadflow.sinks.engine import make_engine

    for url, idle in ((pg_schema_url, "30"), (f"{pg_schema_url}&keepalives_idle=5", "5")):
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                params = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        finally:
            engine.dispose()
        assert params["keepalives"] == "1"
        assert params["keepalives_idle"] == idle  # a URL parameter wins over the default
        assert params["tcp_user_timeout"] == "60000"
