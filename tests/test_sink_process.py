"""The store writer in a child process: the same rows, typed errors, a dead child replaced."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadflow.schemas.errors import PermanentStoreError
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks import SqlSink, make_engine, upgrade
from leadflow.sinks.process import ProcessSink
from tests.support.queries import table_rows
from tests.support.sinks import Recorder, batch

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TABLES = ("lead_lifecycle", "lead_stage_transitions", "handoff_sla", "funnel_daily", "dead_letters")


@pytest.fixture
def process_sink(migrated_url: str) -> Iterator[ProcessSink]:
    sink = ProcessSink(migrated_url)
    try:
        yield sink
    finally:
        sink.close()


def dump(url: str) -> dict[str, list]:
    engine = make_engine(url)
    try:
        return {t: sorted(map(repr, table_rows(engine, t))) for t in TABLES}
    finally:
        engine.dispose()


def test_same_rows_as_the_in_process_sink(process_sink: ProcessSink, tmp_path: Path) -> None:
    snapshots, letters = batch()
    assert process_sink.write_batch(snapshots, letters, NOW) > 0
    assert process_sink.write_batch(snapshots, letters, NOW) == 0  # idempotent, as in-process
    here = f"sqlite:///{tmp_path / 'here.db'}"
    upgrade(here)
    engine = make_engine(here)
    try:
        SqlSink(engine).write_batch(snapshots, letters, NOW)
    finally:
        engine.dispose()
    assert dump(process_sink.url) == dump(here)


def test_a_permanent_error_keeps_its_type(tmp_path: Path) -> None:
    sink = ProcessSink(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    try:
        with pytest.raises(PermanentStoreError, match="no such table"):
            sink.write_batch(*batch(), NOW)
    finally:
        sink.close()


def test_a_writer_dead_while_idle_is_replaced_before_the_next_batch(
    process_sink: ProcessSink,
) -> None:
    process_sink.start()
    pid = process_sink._process.pid
    os.kill(pid, signal.SIGKILL)
    wait_dead(process_sink._process)
    snapshots, letters = batch()
    assert process_sink.write_batch(snapshots, letters, NOW) > 0
    assert process_sink._process.pid != pid


def test_a_writer_killed_during_a_write_is_replaced_and_the_batch_written(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    sink = ProcessSink(url, retry_max_seconds=1.0)
    blocker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        sink.start()
        child = sink._process
        blocker.execute("BEGIN IMMEDIATE")  # the child's write waits for this lock
        seen = Recorder()
        snapshots, letters = batch()
        first = sink.submit(snapshots, letters, NOW, seen)
        second = sink.submit(snapshots[:1], [], NOW, seen)  # sent ahead, behind the first
        time.sleep(1.0)
        assert not first.done() and not second.done()  # waiting for the lock, in the child
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not seen.retries and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen.retries and "writer process stopped" in seen.retries[0]
        blocker.execute("ROLLBACK")
        assert first.result(timeout=30) > 0  # written by a new child
        assert second.result(timeout=30) == 0  # the same lead, already at that version
        assert sink._process.pid != child.pid
        assert seen.commits == [(len(snapshots), len(letters)), (1, 0)]
        assert not seen.failures
        assert len(dump(url)["lead_lifecycle"]) == len({s.lead_id for s in snapshots})
    finally:
        blocker.close()
        sink.close()


def test_after_a_permanent_error_no_later_batch_is_written(process_sink: ProcessSink) -> None:
    snapshots, _ = batch()
    broken = replace(
        snapshots[0], lifecycle={k: v for k, v in snapshots[0].lifecycle.items() if k != "source"}
    )
    seen = Recorder()
    doomed = process_sink.submit([broken], [], NOW, seen)
    later = [process_sink.submit([snap], [], NOW, seen) for snap in snapshots[1:4]]
    with pytest.raises(PermanentStoreError, match="writing a batch failed"):
        doomed.result(timeout=30)
    for future in later:
        with pytest.raises(PermanentStoreError) as caught:
            future.result(timeout=30)
        assert str(caught.value) == str(doomed.exception())
    assert len(seen.failures) == 1 and not seen.commits
    with pytest.raises(PermanentStoreError):
        process_sink.write_batch(snapshots[1:2], [], NOW)  # and it stays failed
    assert dump(process_sink.url)["lead_lifecycle"] == []  # each later batch was valid


def wait_dead(process: Any) -> None:
    deadline = time.monotonic() + 10
    while process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.is_alive()


def test_close_stops_the_child(process_sink: ProcessSink) -> None:
    process_sink.start()
    process = process_sink._process
    process_sink.close()
    assert not process.is_alive()
    assert process.exitcode == 0


def test_the_writer_dies_with_a_killed_worker(tmp_path: Path) -> None:
    """A write in hand must not outlive a worker killed with ``kill -9`` (nor commit later)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    script = (
        "from datetime import UTC, datetime\n"
        "from sinks.process import ProcessSink\n"
        "from tests.support.sinks import batch\n"
        f"sink = ProcessSink({url!r})\n"
        "sink.start()\n"
        "print(sink._process.pid, flush=True)\n"
        "sink.write_batch(*batch(), datetime.now(UTC))\n"
    )
    blocker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the child's write waits for this lock
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        child = int(worker.stdout.readline())
        time.sleep(1.0)  # the batch is in the child, waiting for the lock
        assert alive(child)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 10  # the lock would hold it for 30 s
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the store writer outlived its worker"
        blocker.execute("ROLLBACK")
        assert dump(url)["lead_lifecycle"] == []  # and its batch was not committed
    finally:
        blocker.close()
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_a_snapshot_reaches_the_writer_with_every_field() -> None:
    """Snapshots cross to the writer process pickled; a field left behind would be lost."""
    snapshot = LeadSnapshot(**{f.name: [f"{f.name} value"] for f in fields(LeadSnapshot)})
    assert pickle.loads(pickle.dumps(snapshot)) == snapshot
