"""Mistakes a user can make, run as the real command: non-zero exit, one line, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadflow.pipeline.kafka.broker import free_port
from leadflow.sinks import upgrade


def run(args: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "leadflow", *args],
        env={**variables, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def assert_one_clear_line(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("leadflow: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_broker_unreachable() -> None:
    done = run(
        ["simulate", "--leads", "1"],
        timeout=120,
        LEADFLOW_BROKER=f"kafka://127.0.0.1:{free_port()}",
    )
    assert_one_clear_line(done, "cannot reach the Kafka broker", "LEADFLOW_BROKER")


def test_database_unreachable() -> None:
    url = f"postgresql+psycopg://nobody:hunter2@127.0.0.1:{free_port()}/x"
    for command in (["report"], ["dashboard", "--port", str(free_port())]):
        done = run(command, LEADFLOW_DATABASE_URL=url)
        assert_one_clear_line(done, "check that it is reachable")
        assert "hunter2" not in done.stderr


def test_database_url_wrong() -> None:
    for url in ("mysql://x", "sqlite-ish:nonsense"):
        assert_one_clear_line(run(["report"], LEADFLOW_DATABASE_URL=url), "LEADFLOW_DATABASE_URL")


def test_sqlite_file_missing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nothing.db'}"
    for command in (["report"], ["dashboard", "--port", str(free_port())]):
        assert_one_clear_line(run(command, LEADFLOW_DATABASE_URL=url), "leadflow db upgrade")
    assert not (tmp_path / "nothing.db").exists()


def test_input_file_missing(tmp_path: Path) -> None:
    done = run(["publish", str(tmp_path / "nope.jsonl")])
    assert_one_clear_line(done, "nope.jsonl")


def test_bad_settings() -> None:
    assert_one_clear_line(run(["report"], LEADFLOW_PARTITIONS="x"), "LEADFLOW_PARTITIONS")
    assert_one_clear_line(run(["report"], LEADFLOW_SLA_HOURS="-1"), "LEADFLOW_SLA_HOURS")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_dashboard_port_in_use(tmp_path: Path, busy_port: int) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    done = run(["dashboard", "--port", str(busy_port)], LEADFLOW_DATABASE_URL=url)
    assert_one_clear_line(done, str(busy_port), "--port")


def test_report_output_not_writable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    done = run(["report", "-o", str(tmp_path / "no" / "dir" / "r.html"), "--format", "html"],
               LEADFLOW_DATABASE_URL=url)  # fmt: skip
    assert_one_clear_line(done, "--output")


@pytest.mark.parametrize(
    "command",
    [[], ["worker"], ["broker"], ["demo"], ["simulate"], ["publish"], ["report"], ["schemas"],
     ["db"], ["goals"], ["dashboard"]],
)  # fmt: skip
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    done = run([*command, "--help"])
    assert done.returncode == 0
    assert "example" in done.stdout.lower() or not command
