"""Shared fixtures: real PostgreSQL schemas, SQLite files, embedded brokers and workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from leadflow.pipeline.demo import WorkerProcess
from leadflow.pipeline.kafka.broker import EmbeddedBroker, free_port
from leadflow.pipeline.settings import Settings
from leadflow.sinks import upgrade
from tests.support.fixtures import PG_URL, WorkerFactory, unavailable

SCHEMA_TAG = f"lftest_{uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    engine = create_engine(PG_URL, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except OperationalError as error:
        engine.dispose()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        unavailable(f"POSTGRESQL UNREACHABLE at {PG_URL} ({reason})")
    yield engine
    with engine.begin() as conn:
        leftovers = conn.execute(
            text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :tag"),
            {"tag": SCHEMA_TAG + "%"},
        ).scalars()
        for schema in list(leftovers):
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@contextmanager
def fresh_pg_schema(admin: Engine) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL schema, dropped on leaving."""
    schema = f"{SCHEMA_TAG}_{uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def pg_schema_url(pg_admin: Engine) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL schema, dropped after the test."""
    with fresh_pg_schema(pg_admin) as url:
        yield url


@pytest.fixture
def other_pg_schema_url(pg_admin: Engine) -> Iterator[str]:
    """A second fresh, empty PostgreSQL schema, dropped after the test."""
    with fresh_pg_schema(pg_admin) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of the test's own (not migrated): a SQLite file or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def other_url(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second empty store of the same kind as ``database_url`` (not migrated)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    with fresh_pg_schema(request.getfixturevalue("pg_admin")) as url:
        yield url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    upgrade(database_url)
    return database_url


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A fresh embedded broker on a free loopback port (memory only, so nothing leaks)."""
    try:
        from leadflow.pipeline.kafka.broker import resolve_tansu_bin

        resolve_tansu_bin(os.environ.get("LEADFLOW_TANSU_BIN"))
    except Exception as exc:
        unavailable(f"NO EMBEDDED BROKER ({exc})")
    instance = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(tmp_path / "broker.log"))
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def start_worker(tmp_path: Path, broker: EmbeddedBroker) -> Iterator[WorkerFactory]:
    """Start `leadflow worker` processes against the test's broker; all stopped at the end."""
    started: list[WorkerProcess] = []

    def start(database_url: str, **env: str) -> WorkerProcess:
        web_port = free_port()
        variables = {
            "LEADFLOW_BROKER": broker.url,
            "LEADFLOW_DATABASE_URL": database_url,
            "LEADFLOW_WEB_PORT": str(web_port),
            "LEADFLOW_SESSION_TIMEOUT": "3",
            **env,
        }
        settings = Settings(
            **{k.removeprefix("LEADFLOW_").lower(): v for k, v in variables.items()}
        )
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log", variables)
        started.append(worker)
        worker.wait_ready(60)
        return worker

    yield start
    for worker in started:
        worker.stop()
