"""Personal data stays out of the shared tables; each PostgreSQL role reads only its share."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg.errors import InsufficientPrivilege
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

from leadflow.agents.batch import fold_batch
from leadflow.sinks import SqlSink, make_engine, upgrade
from tests.support.golden import config_of, facts_of, load_scenarios
from tests.support.queries import table_rows

SCENARIOS = load_scenarios()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SHARED = (
    "lead_lifecycle",
    "lead_stage_transitions",
    "handoff_sla",
    "funnel_daily",
    "revenue_daily",
    "shared_goals",
    "lead_events",
    "lead_retractions",
)
PERSONAL = ("lead_contacts", "dead_letters")
RETRACTION = (
    "INSERT INTO lead_retractions (lead_id, event_id, copy_sha256, recorded_at) "
    "VALUES ('L-9', 'e-9', 'h', :t)"
)
PII = ("ana@example.com", "Acme")  # scenario 01's lead.created
DEAD_LETTER = (
    'INSERT INTO dead_letters (topic, partition, "offset", payload_hash, reason, error, payload, '
    "received_at) VALUES ('t', 0, 1, 'h', 'invalid_json', 'e', 'p', :t)"
)


def write_scenarios(url: str) -> None:
    engine = make_engine(url)
    try:
        snapshots = [
            update.snapshot
            for s in SCENARIOS
            for update in fold_batch(
                [(s.lead_id, fact) for fact in facts_of(s)], {}.get, config_of(s), s.now
            ).updates
        ]
        SqlSink(engine).write_batch(snapshots, [], NOW)
    finally:
        engine.dispose()


def test_personal_data_only_in_lead_contacts(migrated_url: str) -> None:
    write_scenarios(migrated_url)
    engine = make_engine(migrated_url)
    try:
        for table in SHARED:
            dump = repr(table_rows(engine, table))
            assert not any(value in dump for value in PII), table
        contacts = {row["lead_id"]: row for row in table_rows(engine, "lead_contacts")}
    finally:
        engine.dispose()
    assert contacts["L-1"]["email"] == "ana@example.com"
    assert contacts["L-1"]["company"] == "Acme"
    assert "L-3" not in contacts  # its lead.created carries no personal data


@pytest.fixture
def role_store(pg_schema_url: str) -> Iterator[str]:
    upgrade(pg_schema_url)
    write_scenarios(pg_schema_url)
    yield pg_schema_url


def connect_as(url: str, role: str) -> Engine:
    return create_engine(make_url(url).set(username=role), poolclass=NullPool)


def can(engine: Engine, sql: str, params: dict[str, Any] | None = None) -> bool:
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params or {})
        return True
    except ProgrammingError as error:
        assert isinstance(error.orig, InsufficientPrivilege), error
        return False


@pytest.mark.postgres
@pytest.mark.parametrize("role", ["leadflow_marketing", "leadflow_sales"])
def test_teams_read_the_shared_tables_only(role_store: str, role: str) -> None:
    engine = connect_as(role_store, role)
    try:
        for table in SHARED:
            assert can(engine, f"SELECT * FROM {table}"), table
        for table in PERSONAL:
            assert not can(engine, f"SELECT * FROM {table}"), table
        assert not can(engine, "DELETE FROM lead_lifecycle")
        assert not can(engine, "UPDATE funnel_daily SET leads = 0")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_leadership_reads_everything_and_sets_goals(role_store: str) -> None:
    engine = connect_as(role_store, "leadflow_leadership")
    try:
        for table in (*SHARED, *PERSONAL):
            assert can(engine, f"SELECT * FROM {table}"), table
        with engine.connect() as conn:
            email = conn.execute(text("SELECT email FROM lead_contacts WHERE lead_id = 'L-1'"))
            assert email.scalar() == "ana@example.com"
        assert can(
            engine,
            "INSERT INTO shared_goals VALUES ('2026-Q4', 'mqls', '', 10, :t)",
            {"t": NOW},
        )
        assert not can(engine, "DELETE FROM lead_lifecycle")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_writer_writes_what_the_worker_needs_and_no_more(role_store: str) -> None:
    engine = connect_as(role_store, "leadflow_writer")
    try:
        as_writer = make_url(role_store).set(username="leadflow_writer")
        upgrade(as_writer.render_as_string(hide_password=False))  # at head: only reads
        write_scenarios(as_writer.render_as_string(hide_password=False))
        assert can(engine, "SELECT * FROM lead_contacts")
        assert not can(engine, "DROP TABLE lead_lifecycle")
        assert not can(engine, "CREATE TABLE intruder (x int)")
        assert not can(engine, "DELETE FROM shared_goals")
        assert can(engine, DEAD_LETTER, {"t": NOW})
        assert not can(engine, "UPDATE dead_letters SET reason = 'invalid_event'")
        assert not can(engine, "DELETE FROM dead_letters")
        assert not can(engine, "DELETE FROM lead_contacts")
        assert can(engine, "UPDATE lead_contacts SET updated_at = :t", {"t": NOW})
        assert can(engine, "SELECT * FROM lead_events")
        assert not can(engine, "DELETE FROM lead_events")
        assert can(engine, RETRACTION, {"t": NOW})
        assert not can(engine, "UPDATE lead_retractions SET recorded_at = :t", {"t": NOW})
        assert not can(engine, "DELETE FROM lead_retractions")
        assert can(engine, "DELETE FROM lead_lifecycle WHERE lead_id = 'nobody'")
    finally:
        engine.dispose()
