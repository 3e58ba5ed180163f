"""What a new user meets first: reaching `leadflow`, a fresh demo store, --version (item 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from leadflow.pipeline.demo import fresh_store
from leadflow.schemas.errors import LeadflowError

REPO = Path(__file__).resolve().parents[1]


def test_the_demo_moves_an_old_sqlite_store_aside(tmp_path: Path) -> None:
    store = tmp_path / "leadflow.db"
    store.write_text("old")
    (tmp_path / "leadflow.db-wal").write_text("wal")
    said = fresh_store(f"sqlite:///{store}", keep_store=False)
    assert said is not None and "--keep-store" in said
    assert not store.exists() and not (tmp_path / "leadflow.db-wal").exists()
    assert (tmp_path / "leadflow.db.previous").read_text() == "old"
    assert fresh_store(f"sqlite:///{store}", keep_store=False) is None  # nothing to move


def test_keep_store_keeps_it(tmp_path: Path) -> None:
    store = tmp_path / "leadflow.db"
    store.write_text("old")
    assert fresh_store(f"sqlite:///{store}", keep_store=True) is None
    assert store.read_text() == "old"


def test_the_demo_never_empties_a_shared_database() -> None:
    with pytest.raises(LeadflowError, match="--keep-store"):
        fresh_store("postgresql+psycopg://u@127.0.0.1/leads", keep_store=False)
    assert fresh_store("postgresql+psycopg://u@127.0.0.1/leads", keep_store=True) is None


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "leadflow", "--version"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("leadflow ") and done.stdout.strip().split()[1][0].isdigit()


def test_make_shell_puts_leadflow_on_path() -> None:
    done = subprocess.run(
        ["make", "-s", "shell"],
        input="command -v leadflow; leadflow --version; exit\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "SHELL": "/bin/sh"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert str(REPO / ".venv" / "bin" / "leadflow") in done.stdout
    assert "leadflow 0." in done.stdout or "leadflow 1." in done.stdout
