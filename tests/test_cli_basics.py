"""The console script's contract for users: help with examples, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadflow", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_every_contract_command() -> None:
    done = run("--help")
    assert done.returncode == 0
    for command in ("worker", "broker", "demo", "simulate", "publish", "report", "schemas", "db"):
        assert command in done.stdout


def test_bad_setting_is_one_clear_line() -> None:
    done = run("schemas", "/tmp/never-written", env={"LEADFLOW_PARTITIONS": "many"})
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "LEADFLOW_PARTITIONS" in lines[0] and "Traceback" not in done.stderr
