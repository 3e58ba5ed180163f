"""The in-process ordered writer: in order, retried until written, halted by a permanent error."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from leadflow.schemas.classify import DeadLetter, Rejection
from leadflow.schemas.errors import PermanentStoreError, StoreError
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks.writer import Backoff, OrderedSink, ThreadWriter
from tests.support.sinks import Recorder

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def letter(offset: int) -> DeadLetter:
    return DeadLetter.of(b"{", Rejection("invalid_json", "x"), "marketing-leads", 0, offset, NOW)


class Flaky:
    """A sink whose writes fail as scripted: a StoreError type (or None) per attempt."""

    def __init__(self, script: list[type[Exception] | None]) -> None:
        self.script = script
        self.attempts: list[int] = []
        self.written: list[int] = []

    def write_batch(
        self, snapshots: Sequence[LeadSnapshot], dead_letters: Sequence[DeadLetter], now: datetime
    ) -> int:
        offset = dead_letters[0].offset
        self.attempts.append(offset)
        error = self.script.pop(0) if self.script else None
        if error is not None:
            raise error(f"attempt on batch {offset} failed")
        self.written.append(offset)
        return 1

    def close(self) -> None:
        pass


def test_a_retryable_failure_is_retried_and_the_next_batch_waits_for_it() -> None:
    sink = Flaky([StoreError, StoreError])
    writer = ThreadWriter(sink, retry_max_seconds=0.3)
    seen = Recorder()
    try:
        futures = [writer.submit([], [letter(n)], NOW, seen) for n in (1, 2)]
        assert [f.result(timeout=10) for f in futures] == [1, 1]
    finally:
        writer.close()
    assert sink.attempts == [1, 1, 1, 2]  # batch 2 only after batch 1 was written
    assert sink.written == [1, 2]
    assert len(seen.retries) == 2 and seen.commits == [(0, 1), (0, 1)]


def test_after_a_permanent_failure_nothing_later_is_written() -> None:
    sink = Flaky([None, PermanentStoreError])
    writer = ThreadWriter(sink)
    seen = Recorder()
    try:
        futures = [writer.submit([], [letter(n)], NOW, seen) for n in (1, 2, 3, 4)]
        assert futures[0].result(timeout=10) == 1
        for future in futures[1:]:
            with pytest.raises(PermanentStoreError, match="batch 2"):
                future.result(timeout=10)
    finally:
        writer.close()
    assert sink.attempts == [1, 2] and sink.written == [1]
    assert len(seen.failures) == 1


def test_an_unexpected_exception_also_stops_every_later_write() -> None:
    sink = Flaky([None, RuntimeError])
    writer = ThreadWriter(sink)
    try:
        futures = [writer.submit([], [letter(n)], NOW, Recorder()) for n in (1, 2, 3)]
        assert futures[0].result(timeout=10) == 1
        for future in futures[1:]:
            with pytest.raises(RuntimeError, match="batch 2"):
                future.result(timeout=10)
    finally:
        writer.close()
    assert sink.attempts == [1, 2] and sink.written == [1]


def test_backoff_doubles_to_its_ceiling_and_starts_over_on_success() -> None:
    backoff = Backoff(1.0)
    assert [backoff.next() for _ in range(5)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    backoff.reset()
    assert backoff.next() == 0.25


def test_only_sinks_that_take_batches_ahead_are_ordered_sinks() -> None:
    assert not isinstance(Flaky([]), OrderedSink)
    writer = ThreadWriter(Flaky([]))
    assert isinstance(writer, OrderedSink)
    writer.close()
