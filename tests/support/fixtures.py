"""Fixture helpers: the PostgreSQL URL, skip-or-fail, worker factories, client settings."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from leadflow.pipeline.demo import WorkerProcess
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.settings import Settings

PG_URL = os.environ.get(
    "LEADFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def unavailable(what: str) -> None:
    """Fail under CI; elsewhere skip, loudly."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}: CI is set, so this is a failure", pytrace=False)
    pytest.skip(f"{what}: THESE TESTS ARE SKIPPED (set CI=1 to make this a failure)")


WorkerFactory = Callable[..., WorkerProcess]


def settings_for(broker: EmbeddedBroker, database_url: str, **values: object) -> Settings:
    """Settings of a test client (publisher, admin) talking to the test's broker and store."""
    return Settings(broker=broker.url, database_url=database_url, **values)  # type: ignore[arg-type]
