"""Engines for the shared store: SQLite tuned for one writer at a time, PostgreSQL via psycopg 3."""

from __future__ import annotations

import time
import warnings
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite has no statement timeout: a progress handler interrupts a statement that runs past
# this deadline, so no write hangs on SQLite either (lock waits stop at the busy timeout).
# Each statement SQLAlchemy runs, BEGIN included, starts the deadline again; statements sent
# to the driver directly run within that of the statement before them.
SQLITE_STATEMENT_TIMEOUT_MS = 20_000
SQLITE_PROGRESS_STEPS = 20_000  # virtual machine steps between two deadline checks
# Reads go through a memory map: a batch touches leads all over the file, and a page read
# past the cache is no syscall. SQLite caps this at its compile-time limit (2 GB by
# default); the mapped pages count in the RSS.
SQLITE_MMAP_BYTES = 2**31
SQLITE_CACHE_KIB = 32 * 1024  # the aggregate recompute rescans whole days of transitions
POOL_SIZE = 5
MAX_OVERFLOW = 5
POOL_TIMEOUT_S = 30
PG_CONNECT_TIMEOUT_S = 10
# A statement that runs longer is cancelled (and the write retried): no write, lock wait
# included, hangs on a store that stopped answering.
PG_STATEMENT_TIMEOUT_MS = 20_000
# A connection whose peer vanished without a reset (a dead host, a dropped route) would hang
# a write forever; libpq's keepalives and TCP user timeout turn that into an error to retry.
PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": PG_CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
WRITE_OPTION = "leadflow_write"  # execution option: this transaction reads then writes


def normalize_url(url: str | URL) -> URL:
    """The URL with a bare ``postgresql://`` (or ``postgres://``) mapped to psycopg 3."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL) -> Engine:
    """An engine with a bounded pool; SQLite in WAL mode, PostgreSQL sessions in UTC."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        # Parameters given in the URL win over these defaults.
        kwargs["connect_args"] = {k: v for k, v in PG_CONNECT_ARGS.items() if k not in parsed.query}
    engine = create_engine(
        parsed,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=True,
        **kwargs,
    )
    if parsed.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _postgres_on_connect)
    return engine


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    pool: dict[str, Any] = {}
    if not in_memory:
        pool = {
            "pool_size": POOL_SIZE,
            "max_overflow": MAX_OVERFLOW,
            "pool_timeout": POOL_TIMEOUT_S,
        }
    with warnings.catch_warnings():  # stray URL arguments: the error that follows says enough
        warnings.simplefilter("ignore")
        engine = create_engine(url, **pool)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    event.listen(engine, "before_cursor_execute", _sqlite_before_execute)
    return engine


_DEADLINE = "leadflow_deadline"  # its key in the pooled connection's info


class _Deadline:
    """One SQLite connection's statement deadline, checked by its progress handler."""

    __slots__ = ("at", "off")

    def __init__(self) -> None:
        self.at = float("inf")
        self.off = False  # for the rest of the transaction: no_statement_timeout()

    def passed(self) -> int:
        return 1 if time.monotonic() > self.at else 0  # non-zero interrupts the statement


def _deadline_of(connection: Connection) -> _Deadline | None:
    found = connection.connection.info.get(_DEADLINE)
    return found if isinstance(found, _Deadline) else None


def _sqlite_before_execute(connection: Connection, *_args: Any) -> None:
    deadline = _deadline_of(connection)
    if deadline is not None:
        limit = float("inf") if deadline.off else SQLITE_STATEMENT_TIMEOUT_MS / 1000
        deadline.at = time.monotonic() + limit


def no_statement_timeout(connection: Connection) -> None:
    """No statement timeout for the rest of ``connection``'s transaction (whole-table work:
    migrations, rebuild), on either store."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
    deadline = _deadline_of(connection)
    if deadline is not None:
        deadline.off = True


def _sqlite_on_connect(dbapi_connection: Any, record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself, so writers can ask for BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    deadline = _Deadline()
    record.info[_DEADLINE] = deadline
    dbapi_connection.set_progress_handler(deadline.passed, SQLITE_PROGRESS_STEPS)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode, NORMAL still survives a killed process; only an OS crash or power loss
        # can lose the last commits (production stores are PostgreSQL).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # A deferred BEGIN would let two writers read the same old aggregates, then one fails.
    deadline = _deadline_of(connection)
    if deadline is not None:
        deadline.off = False
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _postgres_on_connect(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute(f"SET statement_timeout = {int(PG_STATEMENT_TIMEOUT_MS)}")
    dbapi_connection.commit()
