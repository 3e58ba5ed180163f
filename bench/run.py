"""`make bench`: leadflow against its peers, one embedded broker, about ten minutes.

Run from the repository root: ``python -m bench.run`` (``--quick`` for a smoke run of about two
minutes, ``--profile`` to record a py-spy flame graph of the worker during the SQLite
throughput phase, ``--no-postgres`` to skip PostgreSQL).

Phases (each with its own timeout, every process started and stopped by PID):

1. raw       aiokafka + json.loads over the preloaded input topics (bench/peers.py raw)
2. ceiling   a Faust agent that only take()s batches and parses them (bench/peers.py ceiling);
             also the same through leadflow's batch lanes (bench/peers.py lanes)
3. naive     one Faust agent, per event a table write and a send (bench/peers.py naive)
4. leadflow  the real worker over the same topics, until the store holds every row;
             on SQLite and on PostgreSQL (a fresh schema, dropped afterwards)
5. latency   1,000 events/s for 60 s; publish -> row visible in the store, p50/p99
6. state     worker RSS per 100,000 leads in state; throughput with few vs many leads

The last line printed is the ``bench:`` summary; the figures also go to
bench/results/<timestamp>.json, bench/results/latest.json and bench/results/bench.png.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
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
    state_big: int = 400_000  # distinct leads, big state run (the issue asks 1M: see JSON note)
    state_window: int = 40_000  # measured events (lead.touch) after the state is loaded


QUICK = Sizes(
    leads=1_500,
    latency_rate=500,
    latency_seconds=10,
    state_small=2_000,
    state_big=20_000,
    state_window=10_000,
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


def create_topics(bootstrap: str, names: Iterable[str], compact: Iterable[str] = ()) -> None:
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
            configs = {"cleanup.policy": "compact"} if name in compacted else {}
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, PARTITIONS, 1, topic_configs=configs)])
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
        from pipeline.broker import free_port
        from pipeline.demo import WorkerProcess
        from pipeline.settings import Settings

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
            import psutil
        except ImportError:  # /proc: resident pages * page size
            pages = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        # The worker and its store writer process.
        process = psutil.Process(self.pid)
        family = [process, *process.children(recursive=True)]
        return sum(float(p.memory_info().rss) for p in family) / 2**20

    def stop(self) -> None:
        self.process.stop()


@dataclass
class Context:
    bootstrap: str
    workdir: Path
    children: Children
    sizes: Sizes
    tag: str
    profile: bool


def run_leadflow(
    ctx: Context,
    kind: str,
    topics: tuple[str, str],
    messages: int,
    expect: tuple[int, int, int],
    timeout: float,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """The real worker from a loaded topic until the store holds every row."""
    store = Store(kind, ctx.workdir, f"lf-{kind}-{ctx.tag}")
    worker = Worker(ctx, f"bench-lf-{kind}-{ctx.tag}", store, topics)
    spy: subprocess.Popen[bytes] | None = None
    try:
        ready = worker.wait_ready(90)
        startup = ready - worker.started
        if profile_to is not None:
            spy = ctx.children.spawn(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(worker.pid),
                    "--rate",
                    "100",
                    "--nonblocking",
                    "--format",
                    "flamegraph",
                    "-o",
                    str(profile_to),
                ],
                ctx.workdir / "py-spy.log",
            )
        first_processed: float | None = None
        samples: list[tuple[float, int]] = []
        deadline = ready + timeout
        last_db = 0.0
        done: float | None = None
        totals = (0, 0, 0)
        last_metrics = 0.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now - last_db >= 0.2:
                last_db = now
                totals = store.totals()
                if totals == expect:
                    done = time.monotonic()
                    break
            # /metrics costs the worker CPU: often until the first rows, then once a second.
            if first_processed is None or now - last_metrics >= 1.0:
                last_metrics = now
                count = worker.processed()
                samples.append((round(now - ready, 2), count))
                if first_processed is None and count > 0:
                    first_processed = now
            time.sleep(0.05)
        rss = worker.rss_mb()
        if spy is not None:
            Children.stop(spy, timeout=60, sig=signal.SIGINT)
        if done is None:
            raise TimeoutError(f"store holds {totals}, expected {expect}, after {timeout:g}s")
        seconds = done - ready
        return {
            "store": kind,
            "messages": messages,
            "expected_rows": {
                "lead_lifecycle": expect[0],
                "sum_event_count": expect[1],
                "dead_letters": expect[2],
            },
            "worker_startup_s": round(startup, 2),
            "seconds": round(seconds, 3),
            "events_per_s": messages / seconds,
            "first_row_after_s": None
            if first_processed is None
            else round(first_processed - ready, 3),
            "worker_rss_mb_end": round(rss, 1),
            "progress": samples[:: max(1, len(samples) // 60)],
            "method": "t0 = worker /health first 200 (rebalance done, fetching starts; polled "
            "every "
            "50 ms); t1 = first DB poll (every 200 ms) where lead_lifecycle rows, sum(event_count) "
            "and dead_letters rows all equal the expected totals; events_per_s = input messages "
            "(duplicates and bad ones included) / (t1 - t0)",
        }
    finally:
        if spy is not None:
            Children.stop(spy, timeout=60, sig=signal.SIGINT)
        worker.stop()
        store.close()


# -- phases -------------------------------------------------------------------------------------


def run_peer(
    ctx: Context, mode: str, topics: tuple[str, str], expected: int, timeout: float
) -> dict[str, Any]:
    result = ctx.workdir / f"peer-{mode}.json"
    group = f"bench-{mode}-{ctx.tag}"
    extra: list[str] = []
    if mode == "naive":
        out = f"{group}-out"
        create_topics(ctx.bootstrap, [out], compact=[f"{group}-naive-leads-changelog"])
        extra = ["--out-topic", out]
    started = time.monotonic()
    proc = ctx.children.spawn(
        [
            sys.executable,
            "-m",
            "bench.peers",
            mode,
            "--broker",
            ctx.bootstrap,
            "--group",
            group,
            "--topics",
            ",".join(topics),
            "--expected",
            str(expected),
            "--result",
            str(result),
            *extra,
        ],
        ctx.workdir / f"peer-{mode}.log",
    )
    try:
        while not result.exists():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{mode} exited with {proc.returncode}; see {ctx.workdir}/peer-{mode}.log"
                )
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{mode} did not finish within {timeout:g}s")
            time.sleep(0.1)
        body: dict[str, Any] = json.loads(result.read_text())
        body["wall_s_including_startup"] = round(time.monotonic() - started, 2)
        return body
    finally:
        Children.stop(proc)


def throughput_topics(
    ctx: Context,
) -> tuple[tuple[str, str], int, tuple[int, int, int], dict[str, Any]]:
    from pipeline.simulate import simulate, valid_events

    topics = (f"bench-marketing-{ctx.tag}", f"bench-sales-{ctx.tag}")
    create_topics(ctx.bootstrap, topics)
    started = time.monotonic()
    messages = simulate(ctx.sizes.leads, 20260, datetime.now(UTC), key_mode="lead_id")
    valid = valid_events(messages)
    leads = len({m.lead_id for m in valid})
    bad = sum(1 for m in messages if not m.valid)
    generated = time.monotonic() - started
    by_kind = {"marketing": topics[0], "sales": topics[1]}
    started = time.monotonic()
    publish(ctx.bootstrap, ((by_kind[m.topic_kind], m.key, m.value) for m in messages))
    published = time.monotonic() - started
    info = {
        "simulated_leads": ctx.sizes.leads,
        "messages": len(messages),
        "distinct_valid_events": len(valid),
        "duplicates": sum(1 for m in messages if m.valid) - len(valid),
        "bad": bad,
        "leads_with_rows": leads,
        "partitions": PARTITIONS,
        "key": "lead_id (murmur2, the default partitioner)",
        "generate_s": round(generated, 2),
        "publish_s": round(published, 2),
    }
    return topics, len(messages), (leads, len(valid), bad), info


def run_latency(ctx: Context, timeout: float) -> dict[str, Any]:
    """Paced publishing; an event is visible once its lead's event_count reaches its rank."""
    from pipeline.simulate import simulate

    sizes = ctx.sizes
    total = sizes.latency_rate * sizes.latency_seconds
    topics = (f"bench-lat-marketing-{ctx.tag}", f"bench-lat-sales-{ctx.tag}")
    create_topics(ctx.bootstrap, topics)
    leads = max(10, int(total / 7.2))
    messages = simulate(leads, 4242, datetime.now(UTC), key_mode="lead_id")
    while len(messages) < total:
        leads = int(leads * 1.2)
        messages = simulate(leads, 4242, datetime.now(UTC), key_mode="lead_id")
    messages = messages[:total]
    # The rank of each first-seen valid event within its lead: visible once event_count >= rank.
    seen: set[bytes] = set()
    rank_of: dict[str, int] = {}
    targets: list[tuple[int, str, int]] = []  # (message index, lead, rank)
    for i, m in enumerate(messages):
        if m.valid and m.value not in seen and m.lead_id is not None:
            seen.add(m.value)
            rank_of[m.lead_id] = rank_of.get(m.lead_id, 0) + 1
            targets.append((i, m.lead_id, rank_of[m.lead_id]))
    store = Store("sqlite", ctx.workdir, f"latency-{ctx.tag}")
    worker = Worker(ctx, f"bench-lat-{ctx.tag}", store, topics)
    sent_at = [0.0] * len(messages)
    try:
        worker.wait_ready(90)
        rss_start = worker.rss_mb()
        by_kind = {"marketing": topics[0], "sales": topics[1]}
        stop = threading.Event()
        pending = {lead: [] for lead in rank_of}  # lead -> [(rank, message index)] not yet seen
        for i, lead, rank in targets:
            pending[lead].append((rank, i))
        visible_at: dict[int, float] = {}
        polls: list[float] = []

        def poll() -> None:
            probe = store.reader()
            while not stop.is_set():
                started = time.monotonic()
                counts = probe.counts()
                seen_at = time.monotonic()  # visible no later than when the read returned
                polls.append(seen_at - started)
                for lead, count in counts.items():
                    waiting = pending.get(lead)
                    while waiting and waiting[0][0] <= count:
                        visible_at[waiting.pop(0)[1]] = seen_at
                if len(visible_at) == len(targets):
                    break
                time.sleep(0.02)
            probe.close()

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        prod = producer(ctx.bootstrap)
        start = time.monotonic()
        late = 0.0
        for i, m in enumerate(messages):
            due = start + i / sizes.latency_rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            else:
                late = max(late, now - due)
            sent_at[i] = time.monotonic()
            prod.send(by_kind[m.topic_kind], key=m.key, value=m.value)
        publish_seconds = time.monotonic() - start
        prod.flush()
        prod.close(timeout=10)
        deadline = time.monotonic() + timeout
        while poller.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        poller.join(10)
        rss_end = worker.rss_mb()
    finally:
        worker.stop()
        store.close()
    latencies = sorted(
        (visible_at[i] - sent_at[i]) * 1000 for i, _, _ in targets if i in visible_at
    )
    unseen = len(targets) - len(latencies)
    # An event never seen counts as +infinity: it pushes the percentiles up, never down.
    ranked = latencies + [float("inf")] * unseen

    def pct(p: float) -> float:
        return ranked[min(len(ranked) - 1, int(p / 100 * len(ranked)))] if ranked else float("nan")

    return {
        "store": "sqlite",
        "rate_per_s": sizes.latency_rate,
        "seconds": sizes.latency_seconds,
        "messages": len(messages),
        "measured_events": len(targets),
        "unseen_events": unseen,
        "publish_seconds": round(publish_seconds, 2),
        "max_publish_lag_ms": round(late * 1000, 1),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": ranked[-1] if ranked else None,
        "mean_poll_ms": round(sum(polls) / len(polls) * 1000, 1) if polls else None,
        "worker_rss_mb": [round(rss_start, 1), round(rss_end, 1)],
        "percentiles_ms": {str(p): pct(p) for p in (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9)},
        "latencies_ms": latencies,  # for the chart; left out of the JSON files
        "method": "simulator traffic (duplicates and bad messages included) paced at the rate "
        "with a kafka-python producer (linger 5 ms); for every first-seen valid event, latency = "
        "the end of the first store read (SELECT lead_id, event_count FROM lead_lifecycle, about "
        "every 20 ms plus the read) where its lead's event_count reached the event's rank within "
        "the lead, minus the moment before producer.send. An upper bound by up to one poll period.",
    }


def state_messages(
    prefix: str, leads: int, window: int, topic: str, seed: int
) -> Iterator[tuple[str, bytes | None, bytes]]:
    """``leads`` lead.created, then ``window`` lead.touch events on random leads (all marketing)."""
    base = datetime.now(UTC) - timedelta(days=10)
    for i in range(leads):
        lead = f"{prefix}-{i}"
        at = (base + timedelta(seconds=i % 86_400)).strftime("%Y-%m-%dT%H:%M:%SZ")
        value = (
            f'{{"event_id":"{lead}-c","event_type":"lead.created","lead_id":"{lead}",'
            f'"occurred_at":"{at}","source":"paid_search","campaign_id":"cmp-paid_search-01"}}'
        )
        yield topic, lead.encode(), value.encode()
    rng = random.Random(seed)
    later = base + timedelta(days=2)
    for j in range(window):
        lead = f"{prefix}-{rng.randrange(leads)}"
        at = (later + timedelta(seconds=j)).strftime("%Y-%m-%dT%H:%M:%SZ")
        value = (
            f'{{"event_id":"{lead}-t{j}","event_type":"lead.touch","lead_id":"{lead}",'
            f'"occurred_at":"{at}","campaign_id":"cmp-email-0{j % 9 + 1}","channel":"email"}}'
        )
        yield topic, lead.encode(), value.encode()


def run_state(ctx: Context, leads: int, timeout: float, again: str = "") -> dict[str, Any]:
    """Load ``leads`` leads into the worker's state, then time ``state_window`` touches.

    ``again`` tells apart the topics, store and group of a second run of the same size. On
    timeout the partial figures are returned with ``completed: false``.
    """
    window = ctx.sizes.state_window
    name = f"st{leads}{again}"
    topics = (f"bench-{name}-marketing-{ctx.tag}", f"bench-{name}-sales-{ctx.tag}")
    create_topics(ctx.bootstrap, topics)
    started = time.monotonic()
    publish(ctx.bootstrap, state_messages(f"{name}", leads, window, topics[0], seed=leads))
    published = time.monotonic() - started
    store = Store("sqlite", ctx.workdir, f"state-{name}-{ctx.tag}")
    worker = Worker(ctx, f"bench-{name}-{ctx.tag}", store, topics)
    total = leads + window
    samples: list[tuple[float, int, float]] = []  # (seconds since ready, processed, RSS MB)
    try:
        ready = worker.wait_ready(90)
        rss_ready = worker.rss_mb()
        loaded_at: float | None = None
        rss_loaded: float | None = None
        done: float | None = None
        deadline = ready + timeout
        count, rss, last_sample = 0, rss_ready, 0.0
        polls: list[tuple[float, int]] = []  # (monotonic time, processed) within the window
        while time.monotonic() < deadline:
            count = worker.processed()
            now = time.monotonic()
            if now - last_sample >= 2.0:
                rss = worker.rss_mb()
                samples.append((round(now - ready, 1), count, round(rss, 1)))
                last_sample = now
            if loaded_at is None and count >= leads:
                loaded_at, rss_loaded = now, worker.rss_mb()
            if loaded_at is not None:
                polls.append((now, count))
            if count >= total:
                done = now
                break
            time.sleep(0.1 if loaded_at is not None else 0.25)
        samples.append((round(time.monotonic() - ready, 1), count, round(rss, 1)))
        rows = store.totals()
        rss_end = worker.rss_mb()
    finally:
        worker.stop()
        store.close()
    body: dict[str, Any] = {
        "leads": leads,
        "window_events": window,
        "completed": done is not None,
        "publish_s": round(published, 1),
        "rss_mb_ready": round(rss_ready, 1),
        "rss_mb_loaded": None if rss_loaded is None else round(rss_loaded, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_mb_peak": max(s[2] for s in samples),
        "store_totals": rows,
        "samples": samples,
    }
    if loaded_at is not None:
        body["load_seconds"] = round(loaded_at - ready, 2)
        body["load_events_per_s"] = leads / (loaded_at - ready)
    else:
        body["load_events_per_s_partial"] = count / timeout
        body["leads_loaded_partial"] = min(count, leads)
    if done is not None and loaded_at is not None:
        body["window_seconds"] = round(done - loaded_at, 2)
        body["window_events_per_s_end_to_end"] = window / (done - loaded_at)
        body.update(steady_rate(polls, leads, window))
    return body


def steady_rate(polls: list[tuple[float, int]], leads: int, window: int) -> dict[str, Any]:
    """Throughput between the moments 10 % and 90 % of the window had been processed.

    The count grows a batch at a time; both marks are the first poll (every 100 ms) at or past
    a batch boundary, so the span holds whole batches. The trimmed ends are the pipeline
    filling up after the load and the last, partly filled batch, which would weigh more in
    whichever run is faster.
    """
    marks = []
    for share in (0.1, 0.9):
        target = leads + share * window
        marks.append(next((t, n) for t, n in polls if n >= target))
    (t0, n0), (t1, n1) = marks
    if t1 <= t0:
        return {}
    return {
        "window_events_per_s": (n1 - n0) / (t1 - t0),
        "window_steady_events": n1 - n0,
        "window_steady_seconds": round(t1 - t0, 2),
    }


def state_line(body: dict[str, Any]) -> str:
    load = body.get("load_events_per_s") or body.get("load_events_per_s_partial")
    window = body.get("window_events_per_s")
    return (
        f"state {body['leads']:,} leads{'' if body['completed'] else ' (PARTIAL)'}: load "
        f"{fmt(load)} ev/s, window {fmt(window)} ev/s, RSS ready/loaded/end "
        f"{body['rss_mb_ready']}/{body['rss_mb_loaded']}/{body['rss_mb_end']} MB"
    )


def state_summary(state: dict[str, Any], sizes: Sizes) -> dict[str, Any]:
    """RSS per 100k leads and the big/small throughput ratio from the two state runs."""
    small, big = state.get("small"), state.get("big")
    out: dict[str, Any] = {}
    if big is not None:
        loaded = big["leads"] if big["rss_mb_loaded"] is not None else big["leads_loaded_partial"]
        if loaded:
            out["rss_per_100k_mb_in_run"] = (big["rss_mb_end"] - big["rss_mb_ready"]) / loaded * 1e5
    if small is not None and big is not None and big["completed"]:
        out["rss_per_100k_mb"] = (
            (big["rss_mb_end"] - small["rss_mb_end"]) / (big["leads"] - small["leads"]) * 1e5
        )
        out["rss_method"] = "difference of the two runs' final RSS / difference in leads"
    elif "rss_per_100k_mb_in_run" in out:
        out["rss_per_100k_mb"] = out["rss_per_100k_mb_in_run"]
        out["rss_method"] = "big run only: (RSS now - RSS at ready) / leads loaded (partial run)"
    smalls = [
        run["window_events_per_s"]
        for run in (small, state.get("small_after"))
        if run and run.get("window_events_per_s")
    ]
    if smalls and big and big.get("window_events_per_s"):
        reference = sum(smalls) / len(smalls)
        out["throughput_small_reference"] = reference
        out["throughput_big_vs_small"] = big["window_events_per_s"] / reference
    out["note"] = (
        f"The issue asks for 10,000 vs 1,000,000 distinct leads; this run used "
        f"{sizes.state_small:,} vs {sizes.state_big:,} so the whole bench stays within about ten "
        "minutes (at about 2,000 new leads/s one worker needs over eight minutes to load a "
        "million; use --state-big 1000000 for the full figure). Each run: `leads` lead.created "
        f"events, then a window of {sizes.state_window:,} lead.touch events on random leads; "
        "throughput = events processed between the moments 10 % and 90 % of the window were "
        "done / the seconds between them (from /metrics every 100 ms; the end-to-end figure is "
        "kept as window_events_per_s_end_to_end). The small run is made before and again after "
        "the big one; throughput_big_vs_small = big / the mean of the two small runs "
        "(throughput_small_reference), so a drift of the machine's speed over the big run "
        "cancels. "
        "rss_per_100k_mb = (final RSS of the big run - final RSS of the small run) / (difference "
        "in leads) * 100,000, which cancels the worker's fixed and processing memory; "
        "rss_per_100k_mb_in_run = (final - at ready) / leads of the big run."
    )
    return out


# -- fold_speed, chart, summary -------------------------------------------------------------------


def fold_speed() -> dict[str, Any]:
    try:
        out = subprocess.run(
            [sys.executable, str(REPO / "bench" / "fold_speed.py")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        return {"error": str(exc)}
    for line in out.splitlines():
        say(f"fold_speed | {line}")
    return {"output": out.splitlines()}


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars: list[tuple[str, float]] = []
    for key, label in (
        ("raw", "raw aiokafka\n+json.loads"),
        ("ceiling", "Faust take()\n+parse"),
        ("lanes", "leadflow lanes\n+parse"),
        ("naive", "naive Faust\ntable+send"),
    ):
        value = (results.get(key) or {}).get("events_per_s")
        if value:
            bars.append((label, value))
    for kind in ("sqlite", "postgresql"):
        value = (results.get("leadflow", {}).get(kind) or {}).get("events_per_s")
        if value:
            bars.append((f"leadflow\n{kind}", value))
    state = results.get("state") or {}
    for key in ("small", "big", "small_after"):
        run = state.get(key) or {}
        if run.get("window_events_per_s"):
            again = "\nagain" if key == "small_after" else ""
            bars.append((f"leadflow\n{run['leads']:,} leads{again}", run["window_events_per_s"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    peers = sum(1 for label, _ in bars if not label.startswith("leadflow\n"))
    colors = ["#999999"] * peers + ["#1f77b4"] * (len(bars) - peers)
    left.bar([b[0] for b in bars], [b[1] for b in bars], color=colors[: len(bars)])
    for i, (_, value) in enumerate(bars):
        left.text(i, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("events / s (log scale)")
    left.set_title("Throughput (one worker, 2 cores, embedded Tansu)")
    left.tick_params(axis="x", labelsize=7)
    latency = results.get("latency") or {}
    values = latency.get("latencies_ms") or []
    if values:
        right.hist(values, bins=80, color="#1f77b4")
        for p, style in (("p50_ms", "--"), ("p99_ms", ":")):
            v = latency.get(p)
            if v is not None and v != float("inf"):
                right.axvline(v, color="black", linestyle=style, label=f"{p[:-3]} {v:,.0f} ms")
        right.legend()
        right.set_xlabel("publish -> row visible in the store (ms)")
        right.set_ylabel("events")
        right.set_title(
            f"Latency at {latency['rate_per_s']:,} events/s for {latency['seconds']} s (SQLite)"
        )
    else:
        right.text(0.5, 0.5, "latency phase did not run", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value or value == float("inf"):
        return "na"
    return f"{value:.{digits}f}"


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (subprocess.SubprocessError, OSError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty_files": len(git("status", "--porcelain").splitlines()),
    }


def jsonable(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# -- main ---------------------------------------------------------------------------------------


def busy_strangers(mine: set[int]) -> list[str]:
    """Processes outside this benchmark using CPU right now (they skew every figure)."""
    try:
        import psutil
    except ImportError:
        return []
    procs = [p for p in psutil.process_iter(["pid", "name"]) if p.pid not in mine]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
    time.sleep(0.5)
    busy = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            pct = proc.cpu_percent(None)
            if pct >= 10:
                busy.append(f"{proc.pid} {proc.info['name']} {pct:.0f}%")
    return busy


LOAD: dict[str, Any] = {}
CHILDREN = Children()


def phase(results: dict[str, Any], errors: dict[str, str], name: str, fn: Any, *args: Any) -> Any:
    started = time.monotonic()
    mine = {os.getpid(), *(p.pid for p in CHILDREN.procs)}
    strangers = busy_strangers(mine)
    if strangers:
        say(f"{name}: WARNING other processes are busy, figures will be low: {strangers}")
    LOAD[name] = {"loadavg_before": os.getloadavg(), "busy_strangers_before": strangers}
    try:
        value = fn(*args)
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"
        say(f"{name}: FAILED after {time.monotonic() - started:.1f}s: {errors[name]}")
        return None
    finally:
        LOAD[name]["loadavg_after"] = os.getloadavg()
    say(f"{name}: done in {time.monotonic() - started:.1f}s")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a scaled-down smoke run")
    parser.add_argument("--profile", action="store_true", help="py-spy the SQLite throughput run")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--only",
        default="",
        help="comma list of phases (raw,ceiling,naive,sqlite,postgresql,latency,state)",
    )
    parser.add_argument("--state-big", type=int, default=None, help="leads in the big state run")
    parser.add_argument(
        "--budget",
        type=float,
        default=BUDGET_S,
        help="seconds for the whole run; the big state run gets what is left (default %(default)g)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.state_big:
        sizes = Sizes(**{**asdict(sizes), "state_big": args.state_big})
    only = set(filter(None, args.only.split(",")))

    def wanted(name: str) -> bool:
        return not only or name in only

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from pipeline.broker import EmbeddedBroker, free_port

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="leadflow-bench-"))
    children = CHILDREN
    broker = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(workdir / "broker.log"))
    results: dict[str, Any] = {"leadflow": {}}
    errors: dict[str, str] = {}
    pg_problem = "skipped (--no-postgres)" if args.no_postgres else postgres_available()
    say(f"bench: workdir {workdir}; sizes {asdict(sizes)}")
    try:
        results["fold_speed"] = fold_speed()
        try:
            broker.start()
        except Exception as exc:
            errors["broker"] = f"{type(exc).__name__}: {exc}"
            raise KeyboardInterrupt from exc
        say(f"broker: embedded Tansu pid {broker.pid} on 127.0.0.1:{broker.port} (memory)")
        ctx = Context(
            f"127.0.0.1:{broker.port}", workdir, children, sizes, stamp[-7:-1].lower(), args.profile
        )
        loaded = phase(results, errors, "preload", throughput_topics, ctx)
        if loaded is not None:
            topics, n, expect, info = loaded
            results["input"] = info
            say(
                f"preload: {n:,} messages ({info['distinct_valid_events']:,} distinct valid "
                f"events, {info['duplicates']:,} duplicates, {info['bad']:,} bad) for "
                f"{expect[0]:,} leads on "
                f"{topics[0]}, {topics[1]} in {info['publish_s']:.1f}s"
            )
            for mode in ("raw", "ceiling", "lanes", "naive"):
                if wanted(mode if mode != "lanes" else "ceiling"):
                    body = phase(results, errors, mode, run_peer, ctx, mode, topics, n, 120.0)
                    if body:
                        results[mode] = body
                        say(
                            f"{mode}: {body['events_per_s']:,.0f} events/s ({body['seconds']:.2f}s)"
                        )
            for kind in ("sqlite", "postgresql"):
                if not wanted(kind):
                    continue
                if kind == "postgresql" and pg_problem:
                    errors["postgresql"] = f"PostgreSQL unavailable: {pg_problem}"
                    say(f"postgresql: SKIPPED: {pg_problem}")
                    continue
                profile_to = (
                    RESULTS / "profile-leadflow-sqlite.svg"
                    if args.profile and kind == "sqlite"
                    else None
                )
                body = phase(
                    results,
                    errors,
                    f"leadflow-{kind}",
                    run_leadflow,
                    ctx,
                    kind,
                    topics,
                    n,
                    expect,
                    240.0,
                    profile_to,
                )
                if body:
                    results["leadflow"][kind] = body
                    say(
                        f"leadflow {kind}: {body['events_per_s']:,.0f} events/s "
                        f"({body['seconds']:.2f}s, "
                        f"worker start-up {body['worker_startup_s']:.1f}s)"
                    )
        if wanted("latency"):
            body = phase(results, errors, "latency", run_latency, ctx, 30.0)
            if body:
                results["latency"] = body
                say(
                    f"latency: p50 {fmt(body['p50_ms'])} ms, p99 {fmt(body['p99_ms'])} ms, "
                    f"max {fmt(body['max_ms'])} ms, "
                    f"{body['unseen_events']} unseen of {body['measured_events']:,}"
                )
        if wanted("state"):
            state: dict[str, Any] = {}
            # The small run again after the big one: the machine's speed drifts over the
            # minutes the big one takes, and the mean of the two small runs cancels a drift.
            runs = (
                ("small", sizes.state_small),
                ("big", sizes.state_big),
                ("small_after", sizes.state_small),
            )
            for key, leads in runs:
                # The big run gets what is left of the budget (about ten minutes) but for the
                # second small run, and on a slow day at least what loading its leads at
                # 1,200 a second takes.
                left = args.budget - (time.monotonic() - T0) - 25 - 120
                timeout = 120.0 if key != "big" else max(90.0, left, leads / 1_200 + 60)
                again = "b" if key == "small_after" else ""
                body = phase(results, errors, f"state-{key}", run_state, ctx, leads, timeout, again)
                if body:
                    state[key] = body
                    say(state_line(body))
                    if not body["completed"]:
                        errors[f"state-{key}"] = f"not finished within {timeout:.0f}s (partial)"
            state.update(state_summary(state, sizes))
            results["state"] = state
    except KeyboardInterrupt:
        errors.setdefault("interrupted", "KeyboardInterrupt")
    finally:
        children.stop_all()
        broker.stop()

    lf = results.get("leadflow", {})
    lf_rates = {k: v["events_per_s"] for k, v in lf.items() if v}
    leadflow = min(lf_rates.values()) if lf_rates else None
    raw = (results.get("raw") or {}).get("events_per_s")
    ceiling = (results.get("ceiling") or {}).get("events_per_s")
    lanes = (results.get("lanes") or {}).get("events_per_s")
    naive = (results.get("naive") or {}).get("events_per_s")
    latency = results.get("latency") or {}
    state = results.get("state") or {}

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    summary = {
        "leadflow": leadflow,
        "leadflow_is": "min over stores " + ",".join(sorted(lf_rates)) if lf_rates else None,
        "raw": raw,
        "ceiling": ceiling,
        "naive": naive,
        "ratio_raw": ratio(leadflow, raw),
        "ratio_ceiling": ratio(leadflow, ceiling),
        "ratio_naive": ratio(leadflow, naive),
        # Not in the summary line: the ceiling of leadflow's own delivery (batch lanes).
        "ceiling_lanes": lanes,
        "ratio_ceiling_lanes": ratio(leadflow, lanes),
        "p99_ms": latency.get("p99_ms"),
        "rss_per_100k_mb": state.get("rss_per_100k_mb"),
        "throughput_big_vs_small": state.get("throughput_big_vs_small"),
        "targets": {
            "ratio_ceiling": ">= 0.6",
            "ratio_naive": ">= 3",
            "p99_ms": "<= 1000",
            "rss_per_100k_mb": "<= 150",
            "throughput_big_vs_small": ">= 0.8",
        },
    }
    document = {
        "timestamp": stamp,
        "total_seconds": round(time.monotonic() - T0, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "git": git_state(),
        "sizes": asdict(sizes),
        "summary": summary,
        "errors": errors,
        "machine_load": LOAD,
        **results,
    }
    if isinstance(document.get("latency"), dict):
        document["latency"] = {k: v for k, v in document["latency"].items() if k != "latencies_ms"}
    document = jsonable(document)
    text = json.dumps(document, indent=1)
    (RESULTS / f"{stamp}.json").write_text(text)
    (RESULTS / "latest.json").write_text(text)
    try:
        chart(results, RESULTS / "bench.png")
    except Exception as exc:
        say(f"chart: FAILED: {exc}")
    with contextlib.suppress(OSError):
        for path in workdir.iterdir():
            if path.suffix in (".db", ".db-wal", ".db-shm") or path.name.endswith(("-wal", "-shm")):
                path.unlink()
    say(f"results: {RESULTS / (stamp + '.json')}, {RESULTS / 'bench.png'}; logs in {workdir}")
    if errors:
        say(f"errors: {errors}")
    print(
        f"bench: leadflow={fmt(leadflow)} raw={fmt(raw)} ceiling={fmt(ceiling)} naive={fmt(naive)} "
        f"ratio_raw={fmt(summary['ratio_raw'], 3)} "
        f"ratio_ceiling={fmt(summary['ratio_ceiling'], 2)} "
        f"ratio_naive={fmt(summary['ratio_naive'], 2)} p99_ms={fmt(summary['p99_ms'])} "
        f"rss_per_100k_mb={fmt(summary['rss_per_100k_mb'], 1)}",
        flush=True,
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
