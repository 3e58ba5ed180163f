"""A sink that writes in a child process, so store writes run beside the worker's GIL."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from agents.fold import LeadSnapshot
from pipeline.errors import PermanentStoreError, StoreError
from schemas.classify import DeadLetter

START_TIMEOUT_SECONDS = 60.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ProcessSink:
    """A :class:`~sinks.store.Sink` whose ``SqlSink`` lives in a child process.

    SQLAlchemy and the database driver hold the GIL for most of a write, and a worker's
    fold and Kafka clients need it too: in a writer thread both shared one core. The
    child gets batches over a pipe, one at a time, and answers with the row count or the
    store error it raised. A child that dies is replaced, and the batch it held is failed
    with a retryable :class:`StoreError`, so the processor writes it again.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None

    def start(self) -> None:
        """Start the child now (else the first write does); waits until it is ready."""
        with self._lock:
            self._ensure()

    def write_batch(
        self, snapshots: Sequence[LeadSnapshot], dead_letters: Sequence[DeadLetter], now: datetime
    ) -> int:
        if not snapshots and not dead_letters:
            return 0
        with self._lock:
            conn = self._ensure()
            try:
                conn.send((list(snapshots), list(dead_letters), now))
                status, value = conn.recv()
            except (EOFError, OSError) as exc:
                code = self._discard()
                raise StoreError(
                    f"the store writer process stopped (exit code {code}); a new one takes over"
                ) from exc
        if status == "ok":
            return int(value)
        raise value

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(None)
            self._discard()

    def _ensure(self) -> Connection:
        if self._conn is not None and self._process.is_alive():
            return self._conn
        self._discard()
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=serve,
            args=(child, self.url, os.getpid()),
            name="leadflow-store",
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        if not parent.poll(START_TIMEOUT_SECONDS):
            self._discard()
            raise StoreError("the store writer process did not start in time")
        try:
            status, value = parent.recv()
        except (EOFError, OSError) as exc:
            code = self._discard()
            raise StoreError(f"the store writer process failed to start (exit {code})") from exc
        if status != "ok":
            self._discard()
            raise value
        return parent

    def _discard(self) -> int | None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
        return int(process.exitcode) if process.exitcode is not None else None


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


def serve(conn: Connection, url: str, parent: int) -> None:
    """The child: write each batch received, answer ("ok", rows) or ("error", StoreError)."""
    # Ctrl-C reaches the whole process group; the worker decides when this child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    from sinks.engine import make_engine
    from sinks.store import SqlSink

    try:
        sink = SqlSink(make_engine(url))
    except Exception as exc:
        conn.send(("error", PermanentStoreError(f"cannot open the store: {exc}")))
        return
    try:
        conn.send(("ok", 0))
        while True:
            job = conn.recv()
            if job is None:
                break
            try:
                answer: tuple[str, Any] = ("ok", sink.write_batch(*job))
            except StoreError as exc:
                answer = ("error", type(exc)(str(exc)))
            except Exception as exc:
                answer = ("error", PermanentStoreError(f"writing a batch failed: {exc!r}"))
            conn.send(answer)
    except (EOFError, OSError):  # the worker is gone
        pass
    finally:
        sink.close()
