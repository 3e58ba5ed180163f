"""Ordered batch writers: each batch written after the one before it, retried until it is."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.errors import PermanentStoreError, StoreError
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks.store import Sink

log = logging.getLogger("leadflow.sinks")
FIRST_DELAY_SECONDS = 0.25


class WriteObserver(Protocol):
    """What a writer tells about its attempts (metrics and logs); called from its threads."""

    def retrying(self, error: StoreError, delay: float) -> None:
        """An attempt failed with a retryable error; the next one starts in ``delay`` s."""

    def written(self, seconds: float, snapshots: int, letters: int) -> None:
        """A batch is committed; its successful attempt took ``seconds``."""

    def failed(self, error: StoreError) -> None:
        """A batch failed for good; no later batch will be written."""


def tell(call: Callable[..., None], *args: Any) -> None:
    """Call an observer's method; its failure is logged, never the writer's."""
    try:
        call(*args)
    except Exception:
        log.exception("a store write observer failed")


class NoObserver:
    """A :class:`WriteObserver` that ignores everything."""

    def retrying(self, error: StoreError, delay: float) -> None:
        pass

    def written(self, seconds: float, snapshots: int, letters: int) -> None:
        pass

    def failed(self, error: StoreError) -> None:
        pass


@runtime_checkable
class OrderedSink(Protocol):
    """A sink that takes batches ahead of writing them.

    Batches are written in the order submitted, each retried on a retryable
    :class:`StoreError` until it is written; after a :class:`PermanentStoreError` that batch
    and every later one fail with it, unwritten. The future holds the rows written.
    """

    def submit(
        self,
        snapshots: Sequence[LeadSnapshot],
        dead_letters: Sequence[DeadLetter],
        now: datetime,
        observer: WriteObserver,
    ) -> Future[int]: ...

    def close(self) -> None: ...


class Backoff:
    """Delays between attempts: 0.25 s, doubling up to a ceiling; back to the start on success."""

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self.delay = FIRST_DELAY_SECONDS

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.ceiling)
        return delay

    def reset(self) -> None:
        self.delay = FIRST_DELAY_SECONDS


def write_until_done(
    write: Callable[[], int], backoff: Backoff, retrying: Callable[[StoreError, float], bool]
) -> tuple[int, float]:
    """Call ``write`` until it returns: its rows and the seconds its last attempt took.

    A retryable :class:`StoreError` goes to ``retrying`` with the next delay; it reports it,
    waits and says whether to try again (else the error is raised). Any other exception is
    raised at once.
    """
    while True:
        started = time.perf_counter()
        try:
            rows = write()
        except PermanentStoreError:
            raise
        except StoreError as exc:
            if not retrying(exc, backoff.next()):
                raise
            continue
        backoff.reset()
        return rows, time.perf_counter() - started


class ThreadWriter:
    """An :class:`OrderedSink` over any :class:`Sink`: one thread writes, batch after batch."""

    def __init__(self, sink: Sink, retry_max_seconds: float = 30.0) -> None:
        self.sink = sink
        self.retry_max_seconds = retry_max_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadflow-sink")
        self._failed: Exception | None = None
        self._closing = threading.Event()

    def submit(
        self,
        snapshots: Sequence[LeadSnapshot],
        dead_letters: Sequence[DeadLetter],
        now: datetime,
        observer: WriteObserver,
    ) -> Future[int]:
        return self._executor.submit(self._write, snapshots, dead_letters, now, observer)

    def _write(
        self,
        snapshots: Sequence[LeadSnapshot],
        letters: Sequence[DeadLetter],
        now: datetime,
        observer: WriteObserver,
    ) -> int:
        if self._failed is not None:
            raise self._failed
        if not snapshots and not letters:
            return 0

        def retrying(error: StoreError, delay: float) -> bool:
            tell(observer.retrying, error, delay)
            return not self._closing.wait(delay)

        try:
            rows, seconds = write_until_done(
                lambda: self.sink.write_batch(snapshots, letters, now),
                Backoff(self.retry_max_seconds),
                retrying,
            )
        except StoreError as exc:
            if isinstance(exc, PermanentStoreError):
                self._failed = exc
                tell(observer.failed, exc)
            raise  # a retryable one: given up because the writer closes
        except Exception as exc:  # a bug, not the store: never write past it either
            self._failed = exc
            raise
        tell(observer.written, seconds, len(snapshots), len(letters))
        return rows

    def close(self) -> None:
        """Stop retrying; wait for the batch in hand (later ones are dropped, unwritten)."""
        self._closing.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
