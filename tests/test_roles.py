"""Each PostgreSQL role leadflow creates can use the tools it is meant for (issue 20, item 4).

The store is written as the superuser; every command then runs as a role, through the command
itself, with ``-c role=...`` in the connection options.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from leadflow.pipeline.kafka.broker import free_port
from tests.support.demo_store import write_demo_store

REPO = Path(__file__).resolve().parents[1]
READERS = ("leadflow_marketing", "leadflow_sales")


@pytest.fixture
def store(pg_schema_url: str) -> str:
    write_demo_store(pg_schema_url, leads=300)
    return pg_schema_url


def as_role(url: str, role: str) -> str:
    return f"{url}%20-crole%3D{role}"


def leadflow(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadflow", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "LEADFLOW_DATABASE_URL": url, "COLUMNS": "100"},
        cwd=REPO,
        timeout=90,
    )


@pytest.mark.parametrize("role", [*READERS, "leadflow_leadership"])
def test_every_team_role_runs_the_report(store: str, role: str) -> None:
    url = as_role(store, role)
    table = leadflow(url, "report")
    assert table.returncode == 0, table.stderr
    assert "Funnel" in table.stdout and table.stderr == ""
    done = leadflow(url, "report", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["totals"]["leads"] == 300
    if role in READERS:  # dead letters may hold personal data: left out, not an error
        assert data["totals"]["dead_letters"] is None
        assert "not readable by this role" in table.stdout
    else:
        assert data["totals"]["dead_letters"] == 0
    for fmt in ("csv", "html"):
        assert leadflow(url, "report", "--format", fmt).returncode == 0


@pytest.mark.parametrize("role", READERS)
def test_marketing_and_sales_serve_the_dashboard(store: str, role: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadflow", "dashboard", "--port", str(port)],
        env={**os.environ, "LEADFLOW_DATABASE_URL": as_role(store, role)},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = _get(f"http://127.0.0.1:{port}/dashboard", deadline=time.monotonic() + 60, proc=proc)
        assert "Funnel" in body or "funnel" in body
        lead = _get(f"http://127.0.0.1:{port}/dashboard?lead=sim1-000001", time.monotonic() + 30)
        assert "sim1-000001" in lead
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _get(url: str, deadline: float, proc: subprocess.Popen[str] | None = None) -> str:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200
                return str(response.read().decode())
        except (urllib.error.URLError, ConnectionError):
            if proc is not None and proc.poll() is not None:
                raise AssertionError(proc.stderr.read() if proc.stderr else "exited") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_leadership_sets_lists_and_deletes_goals(store: str) -> None:
    url = as_role(store, "leadflow_leadership")
    for period, metric, target in (("2026", "mqls", "150"), ("2026-Q2", "won_deals", "20")):
        done = leadflow(
            url, "goals", "set", "--period", period, "--metric", metric, "--target", target
        )
        assert done.returncode == 0, done.stderr
    listed = leadflow(url, "goals", "list", "--period", "2026-Q2")
    assert listed.returncode == 0, listed.stderr
    assert "won_deals" in listed.stdout and "mqls" not in listed.stdout
    assert " 20 " in listed.stdout and "20.00" not in listed.stdout  # counts are integers
    deleted = leadflow(url, "goals", "delete", "--period", "2026")
    assert deleted.returncode == 0, deleted.stderr
    assert "mqls" not in leadflow(url, "goals", "list").stdout
    again = leadflow(url, "goals", "delete", "--period", "2026")
    assert again.returncode == 1 and again.stderr.count("\n") == 1


@pytest.mark.parametrize("role", READERS)
def test_teams_read_goals_but_may_not_change_them(store: str, role: str) -> None:
    url = as_role(store, role)
    assert leadflow(url, "goals", "list").returncode == 0
    done = leadflow(url, "goals", "set", "--period", "2026", "--metric", "mqls", "--target", "1")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "may not set shared goals" in done.stderr
