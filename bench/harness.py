"""The benchmark's plumbing: sizes, child processes, topics, publishing, stores, workers."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PG_URL = os.environ.get(
    "LEADFLOW_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PARTITIONS = 8
BUDGET_S = 600.0  # the whole run, about ten minutes
T0 = time.monotonic()


@dataclass(frozen=True)
class Sizes:
    """Every size of one run; ``--quick`` scales them down."""

    leads: int = 10_500  # simulator leads for the throughput topics (about 80k messages)
    latency_rate: int = 1_000  # events per second
    latency_seconds: int = 60
    state_small: int = 10_000  # distinct leads, small state run
    state_big: int = 1_000_000  # distinct leads, big state run
    state_window: int = 30_000  # lead.touch events in one measured window
    state_windows: int = 4  # windows for each of the two state workers, taken in turn


QUICK = Sizes(
    leads=1_500,
    latency_rate=500,
    latency_seconds=10,
    state_small=10_000,
    state_big=50_000,
    state_window=10_000,
    state_windows=2,
)


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {text}", flush=True)


# -- processes -----------------------------------------------------------------------------


class Children:
    """Every process the harness spawns, so that each is stopped by its PID at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[Any], timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


# -- broker helpers ----------------------------------------------------------------------------


# Kafka's default retention, set explicitly: Tansu describes a topic created without it with
# no retention.ms, and Quix Streams derives its internal topics' configs from it.
RETENTION = {"retention.ms": "604800000"}


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    compact: Iterable[str] = (),
    configs: dict[str, str] | None = None,
) -> None:
    """Create topics with PARTITIONS partitions before any client asks for their metadata."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
    try:
        existing = set(admin.list_topics())
        compacted = set(compact)
        for name in [*names, *compacted]:
            if name in existing:
                continue
            extra = {**(configs or {})}
            if name in compacted:
                extra["cleanup.policy"] = "compact"
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, PARTITIONS, 1, topic_configs=extra)])
            existing.add(name)
    finally:
        admin.close()


def producer(bootstrap: str) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="bench-publisher",
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
    )


def publish(bootstrap: str, messages: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    """Send (topic, key, value) as fast as the broker takes them; keys go through murmur2."""
    prod = producer(bootstrap)
    pending: list[Any] = []
    n = 0
    try:
        for topic, key, value in messages:
            pending.append(prod.send(topic, key=key, value=value))
            n += 1
            if len(pending) >= 20_000:
                for future in pending:
                    future.get(timeout=60)
                pending.clear()
        prod.flush()
        for future in pending:
            future.get(timeout=60)
    finally:
        prod.close(timeout=10)
    return n


# -- the store ---------------------------------------------------------------------------------


class Store:
    """A leadflow store for one run (a SQLite file or a fresh PostgreSQL schema) and its probe."""

    def __init__(self, kind: str, workdir: Path, tag: str) -> None:
        self.kind = kind
        self.schema: str | None = None
        if kind == "sqlite":
            self.path = workdir / f"{tag}.db"
            self.url = f"sqlite:///{self.path}"
        else:
            self.schema = f"bench_{tag}_{uuid.uuid4().hex[:6]}".replace("-", "_")
            with _pg_admin() as conn:
                conn.execute(f'CREATE SCHEMA "{self.schema}"')
            self.url = f"{PG_URL}?options=-csearch_path%3D{self.schema}"
        self._conn: Any = None

    def _connect(self) -> Any:
        if self._conn is None:
            if self.kind == "sqlite":
                if not self.path.exists():
                    return None
                self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
            else:
                import psycopg

                self._conn = psycopg.connect(_libpq(self.url), autocommit=True)
        return self._conn

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = self._connect()
        if conn is None:
            return []
        try:
            return list(conn.execute(sql).fetchall())
        except Exception as exc:  # the worker may not have created the tables yet
            if (
                "lead_lifecycle" in str(exc)
                or "dead_letters" in str(exc)
                or "no such table" in str(exc)
            ):
                return []
            raise

    def totals(self) -> tuple[int, int, int]:
        """(lead_lifecycle rows, sum of their event_count, dead_letters rows)."""
        rows = self.query(
            "SELECT (SELECT count(*) FROM lead_lifecycle),"
            " (SELECT coalesce(sum(event_count), 0) FROM lead_lifecycle),"
            " (SELECT count(*) FROM dead_letters)"
        )
        if not rows:
            return (0, 0, 0)
        a, b, c = rows[0]
        return int(a), int(b), int(c)

    def counts(self) -> dict[str, int]:
        return {
            lead: count
            for lead, count in self.query("SELECT lead_id, event_count FROM lead_lifecycle")
        }

    def lifecycle_rows(self) -> dict[str, tuple[Any, ...]]:
        """Every ``lead_lifecycle`` row but its ``updated_at``, by lead."""
        from leadflow.sinks.models import LIFECYCLE

        columns = [c.name for c in LIFECYCLE.columns if c.name != "updated_at"]
        rows = self.query(f"SELECT {', '.join(columns)} FROM lead_lifecycle")
        return {row[0]: tuple(row) for row in rows}

    def reader(self) -> Store:
        """A second connection to the same store (for another thread); it never drops anything."""
        other = copy.copy(self)
        other._conn = None
        other.schema = None
        return other

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.schema is not None:
            with _pg_admin() as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            self.schema = None


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextlib.contextmanager
def _pg_admin() -> Iterator[Any]:
    import psycopg

    conn = psycopg.connect(_libpq(PG_URL), autocommit=True, connect_timeout=5)
    try:
        yield conn
    finally:
        conn.close()


def postgres_available() -> str | None:
    try:
        with _pg_admin() as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return str(exc).strip().splitlines()[0]
    return None


# -- the leadflow worker -----------------------------------------------------------------------


class Worker:
    """One `leadflow worker` process (pipeline.demo.WorkerProcess) for one app id and store."""

    def __init__(self, ctx: Context, app_id: str, store: Store, topics: tuple[str, str]) -> None:
        from leadflow.pipeline.demo import WorkerProcess
        from leadflow.pipeline.kafka.broker import free_port
        from leadflow.pipeline.settings import Settings

        web_port = free_port()
        env = {
            "LEADFLOW_BROKER": f"kafka://{ctx.bootstrap}",
            "LEADFLOW_DATABASE_URL": store.url,
            "LEADFLOW_WEB_PORT": str(web_port),
            "LEADFLOW_APP_ID": app_id,
            "LEADFLOW_TOPIC_MARKETING": topics[0],
            "LEADFLOW_TOPIC_SALES": topics[1],
            "LEADFLOW_TOPIC_LIFECYCLE": f"{app_id}-lifecycle",
            "LEADFLOW_TOPIC_DEAD_LETTERS": f"{app_id}-dead-letters",
            "LEADFLOW_SESSION_TIMEOUT": "2",
        }
        settings = Settings(**{k.removeprefix("LEADFLOW_").lower(): v for k, v in env.items()})
        self.started = time.monotonic()
        self.process = WorkerProcess(settings, ctx.workdir / f"{app_id}.log", env)
        ctx.children.procs.append(self.process.proc)
        self.pid = self.process.proc.pid

    def wait_ready(self, timeout: float) -> float:
        """Poll /health every 50 ms; the monotonic time it first answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.process._check_alive()
            if self.process._get("/health") is not None:
                return time.monotonic()
            time.sleep(0.05)
        raise TimeoutError(f"worker not ready within {timeout:g}s; see {self.process.log_path}")

    def processed(self) -> int:
        return self.process.processed()

    def rss_mb(self) -> float:
        try:
            processes = family(self.pid)  # the worker and its store writer process
        except ImportError:  # /proc: resident pages * page size
            pages = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        return sum(float(p.memory_info().rss) for p in processes) / 2**20

    def stop(self) -> None:
        self.process.stop()


def family(pid: int) -> list[Any]:
    """The psutil processes of ``pid`` and all its descendants (a worker and its store writer)."""
    import psutil

    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


@dataclass
class Context:
    bootstrap: str
    workdir: Path
    children: Children
    sizes: Sizes
    tag: str
    profile: bool
    broker_pid: int | None = None


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value or value == float("inf"):
        return "na"
    return f"{value:.{digits}f}"
