"""Secrets (database password, SASL credentials) reach the clients and are never shown."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.settings import Settings
from tests.support.fixtures import WorkerFactory

CANARY = "canary-Secret-7f3a9c"


def test_settings_never_print_secrets() -> None:
    settings = Settings(
        database_url=f"postgresql+psycopg://app:{CANARY}@db.internal:5432/leadflow",
        database_password=CANARY,  # type: ignore[arg-type]
        sasl_password=CANARY,  # type: ignore[arg-type]
        security_protocol="SASL_SSL",
        sasl_username="leadflow",
    )
    for text in (repr(settings), str(settings), settings.store_shown):
        assert CANARY not in text
    assert CANARY in settings.store_url  # the engine gets it


def test_sasl_and_ssl_reach_both_kafka_clients(tmp_path: Path) -> None:
    settings = Settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="leadflow",
        sasl_password=CANARY,  # type: ignore[arg-type]
    )
    options = settings.kafka_python_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("leadflow", CANARY)
    credentials = settings.faust_credentials()
    assert credentials.username == "leadflow" and credentials.password == CANARY
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context is not None
    assert Settings().faust_credentials() is None
    assert Settings().kafka_python_options() == {"security_protocol": "PLAINTEXT"}


def test_the_password_is_used_by_the_engine_and_absent_from_errors() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "leadflow", "report"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "LEADFLOW_DATABASE_URL": "postgresql+psycopg://leadflow@127.0.0.1:1/leadflow",
            "LEADFLOW_DATABASE_PASSWORD": CANARY,
        },
        check=False,
    )
    assert done.returncode != 0
    assert CANARY not in done.stdout + done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "leadflow", "report"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LEADFLOW_DATABASE_URL": f"mysql://x:{CANARY}@h/db"},
        check=False,
    )
    assert bad.returncode != 0 and "LEADFLOW_DATABASE_URL" in bad.stderr
    assert CANARY not in bad.stdout + bad.stderr


@pytest.mark.broker
@pytest.mark.slow
def test_a_running_worker_shows_no_secret(
    broker: EmbeddedBroker, pg_schema_url: str, start_worker: WorkerFactory
) -> None:
    worker = start_worker(
        pg_schema_url, LEADFLOW_DATABASE_PASSWORD=CANARY, LEADFLOW_SASL_PASSWORD=CANARY
    )
    pages = []
    for path in ("/metrics", "/health"):
        with urllib.request.urlopen(worker.base_url + path, timeout=5) as response:
            pages.append(response.read().decode())
    worker.stop()
    assert all(CANARY not in page for page in pages)
    assert CANARY not in worker.log_path.read_text(errors="replace")
