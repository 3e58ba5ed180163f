"""`make bench`: leadflow against its peers, one embedded broker, five to ten minutes.

Run from the repository root: ``python -m bench.run`` (``--quick`` for a smoke run of about two
minutes, ``--profile`` to record py-spy raw stacks of each worker and its store writer during
the throughput phases, ``--no-postgres`` to skip PostgreSQL, ``--peer-rounds N`` to alternate N
rounds of leadflow on PostgreSQL and the Quix Streams peer).

Phases (each with its own timeout, every process started and stopped by PID):

1. raw       aiokafka + json.loads over the preloaded input topics (bench/peers.py raw)
2. ceiling   a Faust agent that only take()s batches and parses them (bench/peers.py ceiling);
             also the same through leadflow's batch lanes (bench/peers.py lanes)
3. naive     one Faust agent, per event a table write and a send (bench/peers.py naive)
4. leadflow  the real worker over the same topics, until the store holds every row;
             on SQLite and on PostgreSQL (a fresh schema, dropped afterwards), with the
             CPU per event of the worker and its store writer
   quix      the Quix Streams peer (bench/quix_peer.py) on the same input into PostgreSQL,
             its rows checked against leadflow's
5. latency   1,000 events/s for 60 s; publish -> row visible in the store, p50/p99
6. state     worker RSS per 100,000 leads in state; throughput with few vs many leads
7. ingest    events/s through `leadflow ingest` at 200 events a request, request p99
             (bench/ingest.py)

The last line printed is the ``bench:`` summary; the figures also go to
bench/results/<timestamp>.json, bench/results/latest.json and bench/results/bench.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import operator
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from bench.harness import (
    BUDGET_S,
    PARTITIONS,
    QUICK,
    REPO,
    RESULTS,
    RETENTION,
    T0,
    Children,
    Context,
    Sizes,
    Store,
    Worker,
    create_topics,
    family,
    fmt,
    postgres_available,
    producer,
    publish,
    say,
)
from bench.ingest import run_ingest
from bench.profile import Spy, cpu_seconds, summarize
from bench.quix import run_quix
from bench.rebuild import rebuild_line, run_rebuild
from bench.state import run_state, state_line


def run_leadflow(
    ctx: Context,
    kind: str,
    topics: tuple[str, str],
    messages: int,
    expect: tuple[int, int, int],
    timeout: float,
    profile_to: Path | None = None,
    keep_rows: bool = False,
    run: str = "",
) -> dict[str, Any]:
    """The real worker from a loaded topic until the store holds every row.

    Also the CPU seconds the worker and its store writer used in that time (psutil); with
    ``profile_to`` (a directory), py-spy raw stacks of both; with ``keep_rows``, the store's
    ``lead_lifecycle`` rows under ``_rows`` (for the Quix peer's correctness check).
    """
    store = Store(kind, ctx.workdir, f"lf-{kind}-{ctx.tag}{run}")
    worker = Worker(ctx, f"bench-lf-{kind}-{ctx.tag}{run}", store, topics)  # its own group
    spy: Spy | None = None
    try:
        ready = worker.wait_ready(90)
        startup = ready - worker.started
        processes = family(worker.pid)
        cpu_start = cpu_seconds(processes)
        if profile_to is not None:
            spy = Spy(ctx, processes, profile_to, f"leadflow-{kind}")
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
        cpu_end = cpu_seconds(processes)
        rss = worker.rss_mb()
        if spy is not None:
            spy.stop()
        if done is None:
            raise TimeoutError(f"store holds {totals}, expected {expect}, after {timeout:g}s")
        seconds = done - ready
        cpu = {
            name: round(cpu_end.get(name, 0.0) - cpu_start.get(name, 0.0), 3) for name in cpu_end
        }
        body: dict[str, Any] = {
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
            "cpu_s": cpu,
            "cpu_us_per_event": sum(cpu.values()) / messages * 1e6,
            "cpu_us_per_event_by_process": {
                name: round(value / messages * 1e6, 1) for name, value in cpu.items()
            },
            "progress": samples[:: max(1, len(samples) // 60)],
            "method": "t0 = worker /health first 200 (rebalance done, fetching starts; polled "
            "every "
            "50 ms); t1 = first DB poll (every 200 ms) where lead_lifecycle rows, sum(event_count) "
            "and dead_letters rows all equal the expected totals; events_per_s = input messages "
            "(duplicates and bad ones included) / (t1 - t0); cpu_us_per_event = user + system "
            "CPU seconds of the worker and its store writer process (psutil, the process family) "
            "between t0 and t1 / input messages",
        }
        if spy is not None:
            body["profile"] = spy.files()
        if keep_rows:
            body["_rows"] = store.lifecycle_rows()
        return body
    finally:
        if spy is not None:
            spy.stop()
        worker.stop()
        store.close()


def profile_parts(body: dict[str, Any]) -> dict[str, Any]:
    """Each profiled process's samples sorted into parts, in microseconds per event."""
    parts = {}
    for name, path in body["profile"].items():
        cpu = body["cpu_us_per_event_by_process"].get(name)
        with contextlib.suppress(OSError):
            parts[name] = summarize(Path(path), cpu)["parts"]
    return parts


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
    from leadflow.pipeline.publish.simulate import simulate, valid_events

    topics = (f"bench-marketing-{ctx.tag}", f"bench-sales-{ctx.tag}")
    create_topics(ctx.bootstrap, topics, configs=RETENTION)
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
    from leadflow.pipeline.publish.simulate import simulate

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
        ("quix", "Quix Streams\npeer (PG)"),
    ):
        value = (results.get(key) or {}).get("events_per_s")
        if value:
            bars.append((label, value))
    for kind in ("sqlite", "postgresql"):
        value = (results.get("leadflow", {}).get(kind) or {}).get("events_per_s")
        if value:
            bars.append((f"leadflow\n{kind}", value))
    state = results.get("state") or {}
    for key in ("small", "big"):
        run = state.get(key) or {}
        if run.get("events_per_s"):
            bars.append((f"leadflow\n{run['leads']:,} leads", run["events_per_s"]))
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


def targets_line(summary: dict[str, Any]) -> str:
    """Each target with its figure and whether it is met (before the summary line)."""
    checks = {">=": operator.ge, "<=": operator.le, "<": operator.lt}
    parts = []
    for name, target in summary["targets"].items():
        op, bound = target.split()
        value = summary.get(name)
        verdict = "na" if value is None else "met" if checks[op](value, float(bound)) else "NOT MET"
        parts.append(f"{name}={fmt(value, 2)} ({target}: {verdict})")
    return "targets: " + ", ".join(parts)


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
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy (raw stacks) of the worker and its store writer in the throughput runs",
    )
    parser.add_argument(
        "--peer-rounds",
        type=int,
        default=1,
        help="rounds of leadflow (PostgreSQL) and the Quix peer, alternating (default 1)",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--only",
        default="",
        help="comma list of phases "
        "(raw,ceiling,naive,sqlite,postgresql,quix,latency,state,ingest,rebuild;"
        " quix needs postgresql)",
    )
    parser.add_argument(
        "--rebuild-leads",
        type=int,
        default=None,
        help="leads of the rebuild phase's store (default 200,000; the issue's figure: 1000000)",
    )
    parser.add_argument("--state-big", type=int, default=None, help="leads of the big state worker")
    parser.add_argument(
        "--budget",
        type=float,
        default=BUDGET_S,
        help="seconds for the whole run; loading the state gets what is left (default %(default)g)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.state_big:
        sizes = Sizes(**{**asdict(sizes), "state_big": args.state_big})
    only = set(filter(None, args.only.split(",")))

    def wanted(name: str) -> bool:
        return not only or name in only

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from leadflow.pipeline.kafka.broker import EmbeddedBroker, free_port

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="leadflow-bench-"))
    children = CHILDREN
    broker = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(workdir / "broker.log"))
    results: dict[str, Any] = {"leadflow": {}}
    reference: dict[str, tuple[Any, ...]] | None = None
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
            f"127.0.0.1:{broker.port}",
            workdir,
            children,
            sizes,
            stamp[-7:-1].lower(),
            args.profile,
            broker.pid,
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
                profile_to = workdir if args.profile else None
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
                    kind == "postgresql" and wanted("quix"),
                )
                if body:
                    if kind == "postgresql":
                        reference = body.pop("_rows", None)
                    if "profile" in body:
                        body["profile_parts"] = profile_parts(body)
                    results["leadflow"][kind] = body
                    say(
                        f"leadflow {kind}: {body['events_per_s']:,.0f} events/s "
                        f"({body['seconds']:.2f}s, "
                        f"worker start-up {body['worker_startup_s']:.1f}s, "
                        f"CPU {body['cpu_us_per_event']:.0f} µs/event: "
                        f"{body['cpu_us_per_event_by_process']})"
                    )
            if wanted("quix") and not pg_problem and reference is not None:
                rounds = []
                for round_no in range(args.peer_rounds):
                    if round_no:  # later rounds: leadflow again first, alternating
                        body = phase(
                            results,
                            errors,
                            f"leadflow-postgresql-{round_no + 1}",
                            run_leadflow,
                            ctx,
                            "postgresql",
                            topics,
                            n,
                            expect,
                            240.0,
                            None,
                            False,
                            f"-r{round_no + 1}",
                        )
                        if body:
                            results["leadflow"].setdefault("postgresql_rounds", []).append(body)
                            say(
                                f"leadflow postgresql, round {round_no + 1}: "
                                f"{body['events_per_s']:,.0f} events/s "
                                f"(CPU {body['cpu_us_per_event']:.0f} µs/event)"
                            )
                    body = phase(
                        results,
                        errors,
                        f"quix-{round_no + 1}",
                        run_quix,
                        ctx,
                        topics,
                        n,
                        expect,
                        300.0,
                        reference,
                        args.profile,
                        f"-r{round_no + 1}",
                    )
                    if body:
                        rounds.append(body)
                        check = body["correctness"]
                        say(
                            f"quix peer: {body['events_per_s']:,.0f} events/s "
                            f"({body['seconds']:.2f}s, CPU {body['cpu_us_per_event']:.0f} "
                            f"µs/event); rows equal to leadflow's: {check['equal']} "
                            f"({check['identical']:,} of {check['leads']:,} leads identical, "
                            f"columns differing: {check['differing_columns']})"
                        )
                        if not check["equal"]:
                            errors["quix"] = f"peer rows differ from leadflow's: {check}"
                if rounds:
                    results["quix"] = {
                        "events_per_s": median(r["events_per_s"] for r in rounds),
                        "cpu_us_per_event": median(r["cpu_us_per_event"] for r in rounds),
                        "rounds": rounds,
                    }
        if wanted("latency"):
            body = phase(results, errors, "latency", run_latency, ctx, 30.0)
            if body:
                results["latency"] = body
                say(
                    f"latency: p50 {fmt(body['p50_ms'])} ms, p99 {fmt(body['p99_ms'])} ms, "
                    f"max {fmt(body['max_ms'])} ms, "
                    f"{body['unseen_events']} unseen of {body['measured_events']:,}"
                )
        if wanted("ingest"):
            body = phase(results, errors, "ingest", run_ingest, ctx, 180.0)
            if body:
                results["ingest"] = body
        if wanted("state"):
            # The load gets what is left of the budget, and on a slow day at least what
            # loading the big state at 1,500 leads a second takes.
            left = args.budget - (time.monotonic() - T0) - 30
            timeout = max(left, sizes.state_big / 1_500 + 60)
            body = phase(results, errors, "state", run_state, ctx, timeout)
            if body:
                results["state"] = body
                say(state_line(body))
                if not body["stores_complete"]:
                    errors["state"] = "a store lacks leads or events (state.*.store_totals)"
        if wanted("rebuild"):
            leads = args.rebuild_leads or (20_000 if args.quick else 200_000)
            body = phase(results, errors, "rebuild", run_rebuild, workdir, leads)
            if body:
                results["rebuild"] = body
                say(rebuild_line(body))
    except KeyboardInterrupt:
        errors.setdefault("interrupted", "KeyboardInterrupt")
    finally:
        children.stop_all()
        broker.stop()

    lf = results.get("leadflow", {})
    runs = {k: v for k, v in lf.items() if k in ("sqlite", "postgresql") and v}
    lf_rates = {k: v["events_per_s"] for k, v in runs.items()}
    leadflow = min(lf_rates.values()) if lf_rates else None
    raw = (results.get("raw") or {}).get("events_per_s")
    ceiling = (results.get("ceiling") or {}).get("events_per_s")
    lanes = (results.get("lanes") or {}).get("events_per_s")
    naive = (results.get("naive") or {}).get("events_per_s")
    latency = results.get("latency") or {}
    state = results.get("state") or {}
    startups = [v["worker_startup_s"] for v in runs.values()]
    # CPU per event: the higher of the two stores (as leadflow= is the slower one).
    cpus = [v["cpu_us_per_event"] for v in runs.values() if v.get("cpu_us_per_event")]
    quix = results.get("quix") or {}
    # The peer writes PostgreSQL: against leadflow's PostgreSQL runs (the median of its rounds).
    pg_runs = [runs["postgresql"], *lf.get("postgresql_rounds", [])] if "postgresql" in runs else []
    leadflow_pg = median(r["events_per_s"] for r in pg_runs) if pg_runs else None
    ingest = (results.get("ingest") or {}).get("one_client") or {}
    rebuild = results.get("rebuild") or {}

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    summary: dict[str, Any] = {
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
        "startup_s": max(startups) if startups else None,
        "ingest_events_per_s": ingest.get("events_per_s"),
        "ingest_p99_ms": ingest.get("p99_ms"),
        "cpu_us_per_event": max(cpus) if cpus else None,
        "cpu_us_per_event_by_store": {k: v.get("cpu_us_per_event") for k, v in runs.items()},
        "leadflow_postgresql": leadflow_pg,
        "peer": quix.get("events_per_s"),
        "peer_cpu_us_per_event": quix.get("cpu_us_per_event"),
        "ratio_peer": ratio(leadflow_pg, quix.get("events_per_s")),
        "rebuild_s": (rebuild.get("rebuild_empty") or {}).get("seconds"),
        "rebuild_peak_rss_mb": (rebuild.get("rebuild_empty") or {}).get("peak_rss_mb"),
        "rebuild_leads": rebuild.get("leads"),
        "targets": {
            "ratio_peer": ">= 3",
            "cpu_us_per_event": "<= 50",
            "ratio_raw": ">= 0.15",
            "ratio_ceiling": ">= 0.6",
            "ratio_naive": ">= 3",
            "p99_ms": "<= 250",
            "rss_per_100k_mb": "<= 150",
            "throughput_big_vs_small": ">= 0.8",
            "startup_s": "< 10",
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
    print(targets_line(summary), flush=True)
    print(
        f"bench: leadflow={fmt(leadflow)} raw={fmt(raw)} ceiling={fmt(ceiling)} naive={fmt(naive)} "
        f"ratio_raw={fmt(summary['ratio_raw'], 3)} "
        f"ratio_ceiling={fmt(summary['ratio_ceiling'], 2)} "
        f"ratio_naive={fmt(summary['ratio_naive'], 2)} p99_ms={fmt(summary['p99_ms'])} "
        f"rss_per_100k_mb={fmt(summary['rss_per_100k_mb'], 1)} "
        f"ingest={fmt(summary['ingest_events_per_s'])} "
        f"ingest_p99_ms={fmt(summary['ingest_p99_ms'])} "
        f"peer={fmt(summary['peer'])} ratio_peer={fmt(summary['ratio_peer'], 2)} "
        f"cpu_us_per_event={fmt(summary['cpu_us_per_event'])}",
        flush=True,
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
