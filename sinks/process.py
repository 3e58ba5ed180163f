"""A sink that writes in a child process, so store writes run beside the worker's GIL."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.errors import PermanentStoreError, StoreError
from leadflow.schemas.records import LeadSnapshot
from leadflow.sinks.writer import Backoff, NoObserver, WriteObserver, tell, write_until_done

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(eq=False)
class _Batch:
    """One batch, pickled once, until the writer has answered for it."""

    payload: bytes
    snapshots: int
    letters: int
    observer: WriteObserver
    future: Future[int] = field(default_factory=Future)

    def __post_init__(self) -> None:
        # Running: a waiter that gives up cannot cancel it under the thread that settles it.
        self.future.set_running_or_notify_cancel()

    def settle(self, rows: int | None = None, error: BaseException | None = None) -> None:
        if self.future.done():
            return
        if error is None:
            self.future.set_result(0 if rows is None else rows)  # a Written keeps its losses
        else:
            self.future.set_exception(error)


@dataclass(eq=False)
class _Child:
    """One writer process, its end of the pipe and the batches it has not answered yet."""

    process: Any
    conn: Connection
    pending: deque[_Batch] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    retrying: bool = False  # its batch in hand failed and waits for the next attempt
    receiver: threading.Thread | None = None

    def take_pending(self) -> list[_Batch]:
        with self.lock:
            batches = list(self.pending)
            self.pending.clear()
        return batches

    def stop(self, timeout: float) -> int | None:
        """Wait for the process to end (kill it after ``timeout``); its exit code."""
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        if self.receiver is not None:
            self.receiver.join(5)
        self.conn.close()
        code = self.process.exitcode
        return int(code) if code is not None else None


_STOP = object()


def _closed() -> StoreError:
    return StoreError("the store writer is closed")


@dataclass(frozen=True)
class _Died:
    child: _Child


class ProcessSink:
    """A sink whose ``SqlSink`` lives in a child process, written ahead (an ``OrderedSink``).

    SQLAlchemy and the database driver hold the GIL for most of a write, and a worker's
    fold and Kafka clients need it too: in a writer thread both shared one core. Batches
    are pickled by the caller and sent by a sender thread as soon as the child can take
    them, so the child starts the next batch the moment it has committed one, without
    waiting for the worker's event loop. The child writes them in order and retries a
    retryable failure itself; after a permanent one it refuses every later batch. A child
    that dies is replaced and gets again every batch it had not answered (a batch it
    committed but did not answer is written twice, which the upserts make harmless).
    """

    def __init__(self, url: str, retry_max_seconds: float = 30.0) -> None:
        self.url = url
        self.retry_max_seconds = retry_max_seconds
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._sender_lock = threading.Lock()  # not _lock: a child may be starting under that
        self._failed: StoreError | None = None
        self._closing = threading.Event()
        self._backoff = Backoff(retry_max_seconds)

    @property
    def _process(self) -> Any:
        child = self._child
        return child.process if child is not None else None

    def start(self) -> None:
        """Start the child now (else the first batch does); waits until it is ready."""
        with self._lock:
            self._ensure_child()
        self._ensure_sender()

    def submit(
        self,
        snapshots: Sequence[LeadSnapshot],
        dead_letters: Sequence[DeadLetter],
        now: datetime,
        observer: WriteObserver,
    ) -> Future[int]:
        batch = _Batch(b"", len(snapshots), len(dead_letters), observer)
        if self._failed is not None:
            batch.settle(error=self._failed)
        elif self._closing.is_set():
            batch.settle(error=_closed())
        elif not snapshots and not dead_letters:
            batch.settle(0)
        else:
            batch.payload = bytes(ForkingPickler.dumps((list(snapshots), list(dead_letters), now)))
            self._ensure_sender()
            self._outbox.put(batch)
        return batch.future

    def write_batch(
        self, snapshots: Sequence[LeadSnapshot], dead_letters: Sequence[DeadLetter], now: datetime
    ) -> int:
        """Write one batch and wait for it (retryable failures are retried until written)."""
        return self.submit(snapshots, dead_letters, now, NoObserver()).result()

    def close(self) -> None:
        """Let the child finish its batch in hand, then stop it; later batches fail unwritten."""
        self._closing.set()
        child = self._child
        if child is not None and child.retrying:  # its batch is not committed: no need to wait
            child.process.kill()
        sender = self._sender
        if sender is not None:
            self._outbox.put(_STOP)
            sender.join(STOP_TIMEOUT_SECONDS + 5)
            if sender.is_alive():  # blocked sending to a child that takes nothing more
                child = self._child
                if child is not None:
                    child.process.kill()
                sender.join(10)
        self._stop_child()

    # -- the sender thread ---------------------------------------------------------------

    def _ensure_sender(self) -> None:
        with self._sender_lock:
            if self._sender is None or not self._sender.is_alive():
                self._sender = threading.Thread(
                    target=self._send_loop, name="leadflow-store-send", daemon=True
                )
                self._sender.start()

    def _send_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is _STOP:
                break
            if isinstance(item, _Died):
                if item.child is self._child:
                    self._recover([])
                continue
            self._deliver(item)
        child = self._child
        if child is not None:
            with contextlib.suppress(OSError):
                child.conn.send(None)
        self._stop_child()
        # Batches that came after the stop.
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Batch):
                item.settle(error=_closed())

    def _stop_child(self) -> None:
        """Stop the child, after the batches it holds unless it is retrying one (then at
        once: that one is not committed); fail every batch it did not answer."""
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            child.stop(0 if child.retrying else STOP_TIMEOUT_SECONDS)
            self._fail(child.take_pending(), _closed())

    def _deliver(self, batch: _Batch) -> None:
        if self._failed is not None:
            batch.settle(error=self._failed)
            return
        try:
            with self._lock:
                child = self._ensure_child()
        except PermanentStoreError as exc:
            self._fail_for_good([batch], exc)
            return
        except StoreError as exc:
            self._recover([batch], exc)
            return
        with child.lock:
            child.pending.append(batch)
        try:
            child.conn.send_bytes(batch.payload)
        except OSError:
            self._recover([])

    def _recover(self, batches: list[_Batch], error: StoreError | None = None) -> None:
        """The child is gone (or would not start): start another, send it what is unanswered.

        ``batches`` come after the dead child's unanswered ones; each attempt that fails
        waits the next backoff delay.
        """
        while True:
            with self._lock:
                dead, self._child = self._child, None
            if dead is not None:
                code = dead.stop(STOP_TIMEOUT_SECONDS)
                batches = dead.take_pending() + batches
                error = StoreError(
                    f"the store writer process stopped (exit code {code}); a new one takes over"
                )
            if not batches:
                return
            if self._closing.is_set():
                self._fail(batches, _closed())
                return
            delay = self._backoff.next()
            tell(batches[0].observer.retrying, error or StoreError("the writer stopped"), delay)
            if self._closing.wait(delay):
                continue
            try:
                with self._lock:
                    child = self._ensure_child()
            except PermanentStoreError as exc:
                self._fail_for_good(batches, exc)
                return
            except StoreError as exc:
                error = exc
                continue
            with child.lock:
                child.pending.extend(batches)
            try:
                for batch in batches:
                    child.conn.send_bytes(batch.payload)
            except OSError:
                batches = []
                continue
            return

    def _fail_for_good(self, batches: list[_Batch], error: StoreError) -> None:
        if self._failed is None:
            self._failed = error
            if batches:
                tell(batches[0].observer.failed, error)
        self._fail(batches, error)

    @staticmethod
    def _fail(batches: list[_Batch], error: StoreError) -> None:
        for batch in batches:
            batch.settle(error=error)

    # -- the child and its answers -------------------------------------------------------

    def _ensure_child(self) -> _Child:
        """The live child, started if need be (under ``_lock``)."""
        if self._child is not None:  # a dead one is found by its receiver or a failed send
            return self._child
        parent, end = self._context.Pipe()
        process = self._context.Process(
            target=serve,
            args=(end, self.url, os.getpid(), self.retry_max_seconds),
            name="leadflow-store",
            daemon=True,
        )
        process.start()
        end.close()
        child = _Child(process, parent)
        if not parent.poll(START_TIMEOUT_SECONDS):
            child.stop(0)
            raise StoreError("the store writer process did not start in time")
        try:
            status, value, _ = parent.recv()
        except (EOFError, OSError) as exc:
            code = child.stop(0)
            raise StoreError(f"the store writer process failed to start (exit {code})") from exc
        if status != "ok":
            child.stop(STOP_TIMEOUT_SECONDS)
            raise value
        child.receiver = threading.Thread(
            target=self._receive_loop, args=(child,), name="leadflow-store-answers", daemon=True
        )
        child.receiver.start()
        self._child = child
        return child

    def _receive_loop(self, child: _Child) -> None:
        """Settle each batch as the child answers for it, in order."""
        try:
            while True:
                kind, value, extra = child.conn.recv()
                with child.lock:
                    batch = child.pending[0] if kind == "retry" else child.pending.popleft()
                if kind == "retry":
                    child.retrying = True
                    tell(batch.observer.retrying, value, extra)
                elif kind == "ok":
                    child.retrying = False
                    self._backoff.reset()
                    tell(batch.observer.written, extra, batch.snapshots, batch.letters)
                    batch.settle(value)
                else:
                    self._fail_for_good([batch], value)
        except (EOFError, OSError):  # the child is gone; the sender replaces it
            self._outbox.put(_Died(child))


def _die_with_parent(parent: int) -> None:
    """Be killed with the worker: a write must not outlive a worker killed with ``kill -9``.

    Without this the child finished (and committed) the batch in hand after its worker was
    gone, or waited on a database lock with no one left to answer to. Linux only; elsewhere
    the child still stops at the next batch, when the pipe is closed.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the worker died before the line above
        os._exit(1)


def serve(conn: Connection, url: str, parent: int, retry_max_seconds: float = 30.0) -> None:
    """The child: write each batch received, in order, and answer for it.

    Answers are (kind, value, extra): ("ok", rows, seconds) once committed, ("retry",
    StoreError, delay) for each failed attempt that will be retried, ("error",
    PermanentStoreError, None) for a batch not written: the one that failed for good and every
    one after it.
    """
    # Ctrl-C reaches the whole process group; the worker decides when this child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    from leadflow.sinks.engine import make_engine
    from leadflow.sinks.store import SqlSink

    try:
        sink = SqlSink(make_engine(url))
    except Exception as exc:
        conn.send(("error", PermanentStoreError(f"cannot open the store: {exc}"), None))
        return
    failed: PermanentStoreError | None = None
    backoff = Backoff(retry_max_seconds)

    def retrying(error: StoreError, delay: float) -> bool:
        conn.send(("retry", type(error)(str(error)), delay))
        time.sleep(delay)
        return True

    try:
        conn.send(("ok", 0, 0.0))
        while True:
            job = conn.recv()
            if job is None:
                break
            if failed is None:
                try:
                    rows, seconds = write_until_done(
                        partial(sink.write_batch, *job), backoff, retrying
                    )
                except PermanentStoreError as exc:
                    failed = type(exc)(str(exc))
                except Exception as exc:
                    failed = PermanentStoreError(f"writing a batch failed: {exc!r}")
                else:
                    conn.send(("ok", rows, seconds))
            if failed is not None:
                conn.send(("error", failed, None))
    except (EOFError, OSError):  # the worker is gone
        pass
    finally:
        sink.close()
