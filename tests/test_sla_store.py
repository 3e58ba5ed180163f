"""The store records the SLA policies it was computed with; a worker with others says so, and
``leadflow rebuild`` with a new policy file restates every cycle (contract section 8)."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from leadflow.agents.fold import FoldConfig, sla_fingerprint
from leadflow.agents.sla.policies import parse_policies
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.pipeline.rebuild import rebuild
from leadflow.pipeline.sla_store import check_sla_policies
from leadflow.sinks import make_engine, upgrade
from leadflow.sinks.models import SLA
from leadflow.sinks.settings import SLA_FINGERPRINT, read_setting
from tests.support.fixtures import WorkerFactory
from tests.support.rebuilds import NOW, dump, run_pipeline
from tests.support.sla import POLICY_FILE

REASONS = frozenset({"not_now", "nurture", "no_budget", "timing"})
OLD_FILE = """
policies:
  - name: old_hot
    when: {min_score: 50}
    target_hours: 1
  - name: old_rest
    target_hours: 72
"""
OLD = FoldConfig(24 * 3600.0, REASONS, parse_policies(OLD_FILE))
NEW = FoldConfig(24 * 3600.0, REASONS, parse_policies(POLICY_FILE))
NEW_NAMES = {"instant", "hot", "americas", "default"}


def stored_fingerprint(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return read_setting(conn, SLA_FINGERPRINT)
    finally:
        engine.dispose()


def check(url: str, config: FoldConfig) -> dict[str, object]:
    engine = make_engine(url)
    try:
        return check_sla_policies(engine, config)
    finally:
        engine.dispose()


def policies_of(url: str) -> list[str | None]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(SLA.c.policy)).scalars())
    finally:
        engine.dispose()


def test_the_fingerprint_is_the_policy_files_or_the_single_clocks() -> None:
    assert sla_fingerprint(NEW) == NEW.policies.fingerprint  # type: ignore[union-attr]
    assert sla_fingerprint(OLD) != sla_fingerprint(NEW)
    four, five = FoldConfig(4 * 3600.0, REASONS), FoldConfig(5 * 3600.0, REASONS)
    assert sla_fingerprint(four) == sla_fingerprint(FoldConfig(4 * 3600.0, frozenset()))
    assert sla_fingerprint(four) != sla_fingerprint(five)
    assert len(sla_fingerprint(four)) == 64


def test_an_empty_store_takes_the_workers_fingerprint(migrated_url: str) -> None:
    state = check(migrated_url, OLD)
    assert state == {"fingerprint": sla_fingerprint(OLD), "store": sla_fingerprint(OLD),
                     "matches": True}  # fmt: skip
    # Still empty: a worker with another file restarts the count and records its own.
    assert check(migrated_url, NEW)["matches"] is True
    assert stored_fingerprint(migrated_url) == sla_fingerprint(NEW)


def test_another_policy_file_warns_once_until_rebuild(
    migrated_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    run_pipeline(migrated_url, OLD)
    with caplog.at_level(logging.WARNING, logger="leadflow"):
        state = check(migrated_url, NEW)
    assert state == {"fingerprint": sla_fingerprint(NEW), "store": sla_fingerprint(OLD),
                     "matches": False}  # fmt: skip
    (record,) = [r for r in caplog.records if r.name == "leadflow"]
    line = record.getMessage()
    assert "\n" not in line
    assert sla_fingerprint(NEW) in line and sla_fingerprint(OLD) in line
    assert "leadflow rebuild" in line
    assert stored_fingerprint(migrated_url) == sla_fingerprint(OLD)  # a worker never overwrites
    rebuild(migrated_url, NEW, NOW, quiet=timedelta(0))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leadflow"):
        assert check(migrated_url, NEW)["matches"] is True
    assert not [r for r in caplog.records if r.name == "leadflow"]


def test_a_store_that_never_recorded_one_does_not_match(migrated_url: str) -> None:
    run_pipeline(migrated_url, OLD)
    engine = make_engine(migrated_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM store_settings")
    engine.dispose()
    assert check(migrated_url, OLD) == {"fingerprint": sla_fingerprint(OLD), "store": None,
                                        "matches": False}  # fmt: skip


def test_rebuild_with_a_new_policy_file_restates_every_cycle_like_a_fresh_pipeline(
    migrated_url: str, other_url: str
) -> None:
    run_pipeline(migrated_url, OLD)
    old_policies = policies_of(migrated_url)
    assert old_policies and set(old_policies) <= {"old_hot", "old_rest"}
    upgrade(other_url)
    run_pipeline(other_url, NEW, batch=3)
    moved = rebuild(migrated_url, NEW, NOW, quiet=timedelta(0))
    assert moved.rewritten > 0
    new_policies = policies_of(migrated_url)
    # Every cycle that had an SLA row now carries a policy of the new file (or none matched).
    assert set(new_policies) <= NEW_NAMES and len(new_policies) == len(old_policies)
    assert dump(migrated_url, updated=False) == dump(other_url, updated=False)
    assert stored_fingerprint(migrated_url) == sla_fingerprint(NEW)


def health(worker: object, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = worker._get("/health")  # type: ignore[attr-defined]
        if body is not None:
            data: dict[str, object] = json.loads(body)
            if data.get("sla_policies") is not None:
                return data
        time.sleep(0.2)
    raise AssertionError("no /health with sla_policies")


@pytest.mark.slow
def test_a_worker_with_another_policy_file_says_so_in_its_log_and_health(
    broker: EmbeddedBroker,
    migrated_url: str,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    run_pipeline(migrated_url, OLD)  # the store was computed with OLD_FILE
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY_FILE)
    worker = start_worker(migrated_url, LEADFLOW_SLA_POLICIES=str(path))
    details = health(worker)["sla_policies"]
    assert details == {"fingerprint": sla_fingerprint(NEW), "store": sla_fingerprint(OLD),
                       "matches": False}  # fmt: skip
    log = worker.log_path.read_text()
    warnings = [line for line in log.splitlines() if "SLA policies differ" in line]
    assert len(warnings) == 1, log[-2000:]
    assert sla_fingerprint(NEW) in warnings[0] and sla_fingerprint(OLD) in warnings[0]
    assert "leadflow rebuild" in warnings[0]
