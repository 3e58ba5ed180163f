"""CPU time and py-spy profiles of a worker's process family, and where the samples go.

``Spy`` records ``py-spy record --format raw`` (folded stacks, one ``frames count`` line each)
of a worker and of its store writer child during a throughput phase (``--profile``).
``python -m bench.profile FILE.txt [FILE.txt ...] [--cpu-us N ...]`` sorts the samples of each
file into the parts of an event's cost (decode, validation, fold, snapshot, encoding, pickling,
Kafka client, Faust plumbing, SQL, ...) and, given each process's measured CPU microseconds per
event (``cpu_us_per_event_by_process`` in the results JSON), prints microseconds per event of
each part: its share of the process's samples times the process's CPU per event.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import Children, Context

RATE_HZ = 200


def role(process: Any, index: int) -> str:
    """``worker`` for the family's first process, ``store_writer`` for its spawned child."""
    if index == 0:
        return "worker"
    with contextlib.suppress(Exception):
        cmdline = " ".join(process.cmdline())
        if "resource_tracker" in cmdline:
            return f"resource_tracker-{process.pid}"
        if "spawn_main" in cmdline:
            return "store_writer"
    return f"child-{process.pid}"


def cpu_seconds(processes: list[Any]) -> dict[str, float]:
    """User + system CPU seconds of each process so far, by role (gone processes: left out)."""
    seconds: dict[str, float] = {}
    for index, process in enumerate(processes):
        with contextlib.suppress(Exception):
            times = process.cpu_times()
            seconds[role(process, index)] = times.user + times.system
    return seconds


class Spy:
    """``py-spy record --format raw`` of every Python process of a worker's family."""

    def __init__(self, ctx: Context, processes: list[Any], directory: Path, tag: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.outputs: dict[str, Path] = {}
        self.procs = []
        for index, process in enumerate(processes):
            name = role(process, index)
            if name not in ("worker", "store_writer"):
                continue
            out = directory / f"profile-{tag}-{name}.txt"
            argv = [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(process.pid),
                "--rate",
                str(RATE_HZ),
                "--nonblocking",
                "--threads",
                "--format",
                "raw",
                "-o",
                str(out),
            ]
            self.procs.append(ctx.children.spawn(argv, ctx.workdir / f"py-spy-{tag}-{name}.log"))
            self.outputs[name] = out

    def stop(self) -> None:
        for proc in self.procs:
            Children.stop(proc, timeout=60, sig=signal.SIGINT)

    def files(self) -> dict[str, str]:
        return {name: str(path) for name, path in self.outputs.items()}


# -- sorting samples into parts ------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Leaf frames where a thread waits rather than computes (py-spy with --nonblocking counts
# them as active): left out of the shares.
WAITS: list[tuple[str, str]] = [
    (r"selectors\.py", r"select$"),
    (r"psycopg/connection\.py", r"wait$"),
    (r"multiprocessing/connection\.py", r"^(_recv|_recv_bytes|poll|_poll|wait)$"),
    (r"threading\.py", r"wait$"),
    (r"queue\.py", r"get$"),
    (r"concurrent/futures", r"(result|wait)$"),
]

# (part, file pattern, function pattern or None), tried from the leaf frame to the root; the
# first frame that matches one decides. Generic frames (the standard library's plumbing,
# leadflow's small helpers such as to_micros) match none and are skipped, so their time goes
# to their caller's part.
RULES: list[tuple[str, str, str | None]] = [
    ("encoding: state (table value)", r"agents/codec\.py", r"^(encode_state|encode_row|_row)$"),
    ("encoding: snapshot JSON", r"agents/codec\.py", r"(encode_snapshot|snapshot_document)$"),
    ("encoding: snapshot JSON", r"agents/codec\.py", r"^_default$"),
    ("encoding: forwarded fact", r"agents/codec\.py", r"^encode_fact$"),
    ("decode: state, forwarded facts", r"agents/codec\.py", None),
    (
        "validation + input JSON (pydantic, classify)",
        r"(schemas/classify\.py|schemas/events\.py|pydantic)",
        None,
    ),
    ("fact from event", r"agents/facts\.py", r"from_event$"),
    ("snapshot rows", r"(agents/attribution\.py|agents/sla/)", None),
    (
        "snapshot rows",
        r"agents/fold\.py",
        r"(snapshot|_sla_rows|_sla_row|_wall_clock_status|_status_letter|header_of)$",
    ),
    ("fold", r"agents/fold\.py", None),
    ("fold", r"agents/batch\.py", r"(fold_batch|_admit|_without|_shrink|refresh|take|put)$"),
    ("snapshot rows", r"agents/batch\.py", r"_update$"),
    (
        "metrics, gauges, SLA index",
        r"(prometheus_client|agents/metrics\.py|agents/owned\.py)",
        None,
    ),
    (
        "metrics, gauges, SLA index",
        r"agents/processor\.py",
        r"(_count_changes|_observe_lag|refresh_gauges)$",
    ),
    ("partitioning (murmur2)", r"agents/partitioning\.py", None),
    (
        "pickling, pipe to the store writer",
        r"(sinks/process\.py|sinks/writer\.py|multiprocessing/|pickle|copyreg|schemas/records\.py)",
        None,
    ),
    # quixstreams/kafka/ wraps confluent-kafka: librdkafka's produce and consume calls.
    (
        "Kafka client (aiokafka, record batches; confluent-kafka)",
        r"(aiokafka|kafka/|record_batches\.py|confluent_kafka)",
        None,
    ),
    (
        "Faust plumbing (mode, lanes, agents, commits)",
        r"(faust/|/mode/|pipeline/faust/|agents/stream\.py|venusian|yarl|aiohttp)",
        None,
    ),
    ("processor (batch loop, dead letters)", r"(agents/processor\.py|schemas/)", None),
    ("SQL: aggregates (funnel, revenue)", r"sinks/aggregates\.py", None),
    (
        "SQL: rows, reads, diffs (leadflow sink)",
        r"(sinks/store\.py|sinks/rows\.py|sinks/engine\.py|sinks/types\.py)",
        None,
    ),
    (
        "SQL: driver + database (executemany, commit, fetch)",
        r"sqlalchemy/engine/(default|cursor)\.py",
        r"(do_executemany|do_execute|do_commit|do_rollback|fetchone|fetchall|fetchmany|_fetchall_impl|_fetchone_impl)$",
    ),
    ("SQL: SQLAlchemy (compile, params, results)", r"sqlalchemy", None),
    ("SQL: driver + database (executemany, commit, fetch)", r"(psycopg|sqlite3)", None),
    ("Quix Streams", r"quixstreams", None),
    ("logging", r"logging/", None),
]
_COMPILED = [
    (part, re.compile(files), re.compile(funcs) if funcs else None) for part, files, funcs in RULES
]
_WAITS = [(re.compile(files), re.compile(funcs)) for files, funcs in WAITS]
EVENT_LOOP = "event loop, threads (stdlib only)"
WAITING = "waiting (left out)"
SENSORS = "Faust sensors (per-message monitor, Prometheus)"


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame)
        if match is not None and not frame.startswith(("thread ", "process ")):
            frames.append((match["file"], match["func"]))
    return frames


def part_of(stack: str) -> str:
    frames = _frames(stack)
    if frames:
        file, func = frames[-1]
        if any(files.search(file) and funcs.search(func) for files, funcs in _WAITS):
            return WAITING
    if any("faust/sensors/" in file for file, _ in frames):
        return SENSORS  # Faust's monitor, called per message, with its Prometheus counters
    for file, func in reversed(frames):
        for part, files, funcs in _COMPILED:
            if files.search(file) and (funcs is None or funcs.search(func)):
                return part
    return EVENT_LOOP


def read_raw(path: Path) -> Counter[str]:
    """py-spy's raw format: ``frame;frame;... count`` a line (root first)."""
    stacks: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def summarize(path: Path, cpu_us: float | None) -> dict[str, Any]:
    parts: Counter[str] = Counter()
    for stack, count in read_raw(path).items():
        parts[part_of(stack)] += count
    waiting = parts.pop(WAITING, 0)
    total = sum(parts.values())
    rows = []
    for part, count in parts.most_common():
        share = count / total if total else 0.0
        rows.append(
            {
                "part": part,
                "samples": count,
                "share": round(share, 4),
                "us_per_event": None if cpu_us is None else round(share * cpu_us, 1),
            }
        )
    return {
        "file": str(path),
        "samples": total,
        "waiting_samples": waiting,
        "cpu_us_per_event": cpu_us,
        "parts": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument(
        "--cpu-us",
        type=float,
        nargs="*",
        default=[],
        help="each file's process CPU microseconds per event, in the files' order",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    out = []
    for i, path in enumerate(args.files):
        cpu = args.cpu_us[i] if i < len(args.cpu_us) else None
        out.append(summarize(path, cpu))
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    for body in out:
        print(
            f"{body['file']}: {body['samples']} samples ({body['waiting_samples']} waiting, "
            f"left out), {body['cpu_us_per_event']} µs/event"
        )
        for row in body["parts"]:
            us = "" if row["us_per_event"] is None else f"{row['us_per_event']:7.1f} µs"
            print(f"  {row['share'] * 100:5.1f}%  {us}  {row['part']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
