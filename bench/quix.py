"""The Quix Streams peer's phase: bench/quix_peer.py on the same input, into the same PostgreSQL.

Timed as leadflow is, from the peer's first classified message (it writes the moment to a
file) to the first store poll (every 200 ms) at which ``lead_lifecycle`` rows,
``sum(event_count)`` and ``dead_letters`` rows equal the expected totals; then its
``lead_lifecycle`` rows are compared with leadflow's, lead by lead and column by column
(``updated_at`` aside). CPU per event: the peer process's user + system CPU seconds over the
same interval (librdkafka's threads included) / input messages.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from bench.harness import RETENTION, Children, Context, Store, create_topics, family
from bench.profile import Spy, cpu_seconds


def compare(
    reference: dict[str, tuple[Any, ...]], rows: dict[str, tuple[Any, ...]]
) -> dict[str, Any]:
    """How the peer's rows differ from leadflow's: leads missing either side, columns differing."""
    from leadflow.sinks.models import LIFECYCLE

    columns = [c.name for c in LIFECYCLE.columns if c.name != "updated_at"]
    differing: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    for lead, row in reference.items():
        other = rows.get(lead)
        if other is None or other == row:
            continue
        for name, a, b in zip(columns, row, other, strict=True):
            if a != b:
                differing[name] += 1
                if len(examples) < 5:
                    examples.append({"lead_id": lead, "column": name, "leadflow": a, "peer": b})
    missing = sorted(set(reference) - set(rows))
    extra = sorted(set(rows) - set(reference))
    unequal = sum(1 for lead, row in reference.items() if lead in rows and rows[lead] != row)
    return {
        "leads": len(reference),
        "identical": len(reference) - len(missing) - unequal,
        "missing_in_peer": len(missing),
        "extra_in_peer": len(extra),
        "unequal": unequal,
        "differing_columns": dict(differing),
        "examples": [{k: str(v) for k, v in e.items()} for e in examples],
        "equal": not missing and not extra and unequal == 0,
    }


def run_quix(
    ctx: Context,
    topics: tuple[str, str],
    messages: int,
    expect: tuple[int, int, int],
    timeout: float,
    reference: dict[str, tuple[Any, ...]] | None,
    profile: bool = False,
    run: str = "",
) -> dict[str, Any]:
    tag = f"quix-{ctx.tag}{run}"  # its own group, state and store each round
    store = Store("postgresql", ctx.workdir, tag)
    group = f"bench-{tag}"
    out_topic = f"{group}-lifecycle"
    create_topics(ctx.bootstrap, [out_topic], configs=RETENTION)
    started_file = ctx.workdir / f"{tag}.started"
    spawned = time.monotonic()
    proc = ctx.children.spawn(
        [
            sys.executable,
            "-m",
            "bench.quix_peer",
            "--broker",
            ctx.bootstrap,
            "--group",
            group,
            "--topics",
            ",".join(topics),
            "--out-topic",
            out_topic,
            "--database-url",
            store.url,
            "--state-dir",
            str(ctx.workdir / f"{tag}-state"),
            "--started",
            str(started_file),
        ],
        ctx.workdir / f"{tag}.log",
    )
    spy: Spy | None = None
    try:
        processes = family(proc.pid)
        cpu_start: dict[str, float] | None = None
        t0: float | None = None
        done: float | None = None
        totals = (0, 0, 0)
        deadline = spawned + timeout
        last_db = 0.0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Quix peer exited with {proc.returncode}; see {tag}.log")
            if t0 is None and started_file.exists():
                t0 = float(started_file.read_text())
                cpu_start = cpu_seconds(processes)
                if profile:
                    spy = Spy(ctx, processes, ctx.workdir, f"quix{run}")
            now = time.monotonic()
            if t0 is not None and now - last_db >= 0.2:
                last_db = now
                totals = store.totals()
                if totals == expect:
                    done = time.monotonic()
                    break
            time.sleep(0.05)
        cpu_end = cpu_seconds(processes)
        if spy is not None:
            spy.stop()
        if done is None or t0 is None:
            raise TimeoutError(f"store holds {totals}, expected {expect}, after {timeout:g}s")
        cpu = cpu_end.get("worker", 0.0) - (cpu_start or {}).get("worker", 0.0)
        seconds = done - t0
        rows = store.lifecycle_rows()
        body: dict[str, Any] = {
            "store": "postgresql",
            "messages": messages,
            "startup_s": round(t0 - spawned, 2),
            "seconds": round(seconds, 3),
            "events_per_s": messages / seconds,
            "cpu_s": round(cpu, 3),
            "cpu_us_per_event": cpu / messages * 1e6,
            "correctness": compare(reference, rows) if reference is not None else None,
            "method": "bench/quix_peer.py (Quix Streams, leadflow's classifier, fold and codec, "
            "group_by by lead, Quix State with its changelog, SqlSink upserts in a BatchingSink, "
            "snapshots to a topic); t0 = its first message classified; t1 = first DB poll (every "
            "200 ms) where lead_lifecycle rows, sum(event_count) and dead_letters rows all equal "
            "the expected totals; events_per_s = input messages / (t1 - t0); correctness = its "
            "lead_lifecycle rows against leadflow's PostgreSQL run, every column but updated_at",
        }
        if spy is not None:
            body["profile"] = spy.files()
        return body
    finally:
        if spy is not None:
            spy.stop()
        Children.stop(proc)
        store.close()
