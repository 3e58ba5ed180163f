"""``leadflow rebuild`` (contract section 7) on both stores."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from leadflow.agents.fold import FoldConfig
from leadflow.pipeline.rebuild import rebuild, summary
from leadflow.sinks import make_engine, upgrade
from leadflow.sinks.rebuild import RebuildRefused
from leadflow.sinks.store import AGGREGATE_LOCK_ID
from tests.support.rebuilds import NOW, dump, events, run_pipeline

BEFORE = FoldConfig(24 * 3600.0, frozenset({"not_now", "nurture", "no_budget", "timing"}))
AFTER = FoldConfig(60.0, frozenset({"bad_fit"}))
NO_WAIT = timedelta(0)


def test_rebuild_after_new_settings_equals_a_fresh_pipeline(
    migrated_url: str, other_url: str
) -> None:
    second_url = other_url
    run_pipeline(migrated_url, BEFORE)
    upgrade(second_url)
    run_pipeline(second_url, AFTER, batch=3)
    moved = rebuild(migrated_url, AFTER, NOW, quiet=NO_WAIT)
    assert moved.rewritten > 0 and moved.stage and moved.sla
    assert dump(migrated_url, updated=False) == dump(second_url, updated=False)
    lines = list(summary(moved))
    assert f"{moved.stage_moved} changed stage" in lines[0]
    assert moved.stage_moved >= len(moved.stage)
    assert any("disqualified -> recycled" in line for line in lines)


def test_rebuild_of_an_unchanged_store_changes_no_row(migrated_url: str) -> None:
    run_pipeline(migrated_url, BEFORE)
    before = dump(migrated_url)
    moved = rebuild(migrated_url, BEFORE, NOW, quiet=NO_WAIT)
    assert moved.leads == len({lead_id for lead_id, _ in events()})
    assert (moved.rewritten, moved.stage, moved.sla) == (0, [], [])
    assert dump(migrated_url) == before


def test_rebuild_refuses_a_store_written_moments_ago(migrated_url: str) -> None:
    run_pipeline(migrated_url, BEFORE)
    engine = make_engine(migrated_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE lead_events SET received_at = :t"), {"t": datetime.now(UTC)})
    engine.dispose()
    before = dump(migrated_url)
    with pytest.raises(RebuildRefused, match="a worker may be running"):
        rebuild(migrated_url, AFTER, NOW)
    assert dump(migrated_url) == before


def test_rebuild_refuses_leads_without_history(migrated_url: str) -> None:
    run_pipeline(migrated_url, BEFORE)
    engine = make_engine(migrated_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM lead_events WHERE lead_id LIKE '%-0'"))
    engine.dispose()
    with pytest.raises(RebuildRefused, match="no events in lead_events"):
        rebuild(migrated_url, AFTER, NOW, quiet=NO_WAIT)


@pytest.mark.postgres
def test_rebuild_refuses_while_a_writer_holds_the_store(pg_schema_url: str) -> None:
    upgrade(pg_schema_url)
    run_pipeline(pg_schema_url, BEFORE)
    engine = make_engine(pg_schema_url)
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": AGGREGATE_LOCK_ID})
            held.set()
            release.wait(20)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert held.wait(20)
        with pytest.raises(RebuildRefused, match="a worker is writing"):
            rebuild(pg_schema_url, AFTER, NOW, quiet=NO_WAIT)
    finally:
        release.set()
        thread.join(20)
        engine.dispose()


def test_the_command_prints_what_moved(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    run_pipeline(url, BEFORE)
    env = {
        **os.environ,
        "LEADFLOW_DATABASE_URL": url,
        "LEADFLOW_SLA_HOURS": "0.02",
        "LEADFLOW_RECYCLE_REASONS": "bad_fit",
    }
    command = [sys.executable, "-m", "leadflow", "rebuild", "--quiet-seconds", "0"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    leads = len({lead_id for lead_id, _ in events()})
    assert done.stdout.startswith(f"rebuilt {leads} leads from lead_events"), done.stdout
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "0 rewritten, 0 changed stage, 0 changed SLA status" in again.stdout
    # The first rebuild just wrote rows: without --quiet-seconds 0 it looks like a worker.
    busy = subprocess.run(command[:-2], env=env, capture_output=True, text=True, timeout=120)
    assert busy.returncode == 1
    assert busy.stderr.startswith("leadflow: this store was written"), busy.stderr
