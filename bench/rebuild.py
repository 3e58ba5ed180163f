"""The rebuild phase: time and peak RSS of ``leadflow rebuild`` over a large store, and the
cost of a worker's recovery (refolding leads from lead_events).

A SQLite store gets ``leads`` leads of four events each (created, touch, mql, accepted) in
lead_events and nothing else; then, each in its own process:
- ``leadflow rebuild`` of that store (every lead's rows written: the derived tables are
  empty), then again (an unchanged store: no row written); time and peak RSS (the child's
  VmHWM, and its anonymous RSS, the store's mapped pages left out, read every 50 ms);
- one worker's recovery of one partition of eight (about ``leads / 8`` leads) with an empty
  Kafka state: versions read, events read, leads refolded and written (their rows stay).

Run alone: ``.venv/bin/python -m bench.rebuild --leads 200000``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from leadflow.sinks import make_engine, upgrade
from leadflow.sinks.models import EVENTS

PARTITIONS = 8
INSERT_CHUNK = 20_000  # leads per insert transaction
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def lead_rows(index: int, received: datetime) -> list[dict[str, Any]]:
    """Four events of lead ``index``: created, touch, mql, accepted an hour apart."""
    lead_id = f"L{index:08d}"
    at = START + timedelta(seconds=index % 86_400)
    base = {
        "lead_id": lead_id,
        "source_system": "bench",
        "source": None,
        "campaign_id": None,
        "channel": None,
        "score": None,
        "owner_id": None,
        "reason": None,
        "opportunity_id": None,
        "amount": None,
        "currency": None,
        "received_at": received,
    }
    kinds = [
        ("lead.created", {"source": "paid_search", "campaign_id": f"C{index % 50}"}),
        ("lead.touch", {"campaign_id": f"C{index % 50}", "channel": "email"}),
        ("lead.mql", {"score": 70}),
        ("lead.accepted", {"owner_id": f"rep{index % 20}"}),
    ]
    return [
        {
            **base,
            **fields,
            "event_id": f"{lead_id}-{n}",
            "event_type": kind,
            "occurred_at": at + timedelta(hours=n),
        }
        for n, (kind, fields) in enumerate(kinds)
    ]


def make_store(url: str, leads: int) -> float:
    """A migrated store holding ``leads`` leads in lead_events only; the seconds it took."""
    started = time.monotonic()
    upgrade(url)
    received = datetime.now(UTC) - timedelta(days=1)
    engine = make_engine(url)
    try:
        for first in range(0, leads, INSERT_CHUNK):
            rows = [
                row
                for index in range(first, min(first + INSERT_CHUNK, leads))
                for row in lead_rows(index, received)
            ]
            with engine.begin() as conn:
                conn.execute(insert(EVENTS), rows)
    finally:
        engine.dispose()
    return time.monotonic() - started


def measured(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``command``; its seconds, peak RSS (MB) and output lines (stdout only)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        peak_kb = anon_kb = 0
        while proc.poll() is None:
            hwm, anon = memory_kb(proc.pid)
            peak_kb, anon_kb = max(peak_kb, hwm), max(anon_kb, anon)
            time.sleep(0.05)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        lines = out.read().decode().strip().splitlines()
        if proc.returncode != 0:
            problem = err.read().decode()[-2000:]
            raise RuntimeError(f"{command} exited {proc.returncode}: {problem}")
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "peak_anon_mb": round(anon_kb / 1024, 1),
        "output": lines,
    }


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, RssAnon) of the process: its peak RSS so far, of its own address space (not
    the parent's, as ``ru_maxrss`` after fork and exec can be), and its anonymous memory now
    (RSS less the pages of files it maps: the SQLite store is memory-mapped); (0, 0) once it
    is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return tuple(int(fields.get(k, "0 kB").split()[0]) for k in ("VmHWM", "RssAnon"))  # type: ignore[return-value]


def rebuild_once(url: str) -> dict[str, Any]:
    env = {**os.environ, "LEADFLOW_DATABASE_URL": url}
    command = [sys.executable, "-m", "leadflow", "rebuild", "--quiet-seconds", "0"]
    body = measured(command, env)
    lines = body.pop("output")
    return {**body, "summary": lines[0] if lines else ""}


def recovery(url: str) -> dict[str, Any]:
    """One worker's recovery of partition 0 with an empty state, in a child process."""
    command = [sys.executable, "-m", "bench.rebuild", "--recover", url]
    body = measured(command, dict(os.environ))
    return {**json.loads(body.pop("output")[-1]), **body}


def recover_partition(url: str) -> dict[str, Any]:
    """In this process: a LeadProcessor with an empty table recovers partition 0."""
    import asyncio

    from leadflow.agents.history import StoreHistory
    from leadflow.agents.metrics import Metrics
    from leadflow.agents.processor import LeadProcessor
    from leadflow.pipeline.settings import Settings
    from leadflow.sinks import SqlSink

    settings = Settings(database_url=url, partitions=PARTITIONS)
    names = settings.topic_names()
    engine = make_engine(url)

    async def sent(topic: str, key: bytes | None, value: bytes) -> Any:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def body() -> tuple[int, float]:
        lead = LeadProcessor(
            names=names,
            partitions=PARTITIONS,
            partition_counts={names.marketing: PARTITIONS, names.sales: PARTITIONS},
            config=settings.fold_config(),
            table={},
            sink=SqlSink(engine),
            send=sent,
            metrics=Metrics.create(),
            history=StoreHistory(engine),
        )
        started = time.monotonic()
        count = await lead.recover({0})
        seconds = time.monotonic() - started
        lead.close()
        return count, seconds

    try:
        count, seconds = asyncio.run(body())
    finally:
        engine.dispose()
    per_1000 = seconds / count * 1000 if count else None
    return {"leads": count, "recover_s": round(seconds, 2), "s_per_1000_leads": per_1000}


def run_rebuild(workdir: Path, leads: int) -> dict[str, Any]:
    """The phase: build the store, rebuild it twice, recover one partition."""
    url = f"sqlite:///{workdir / 'rebuild.db'}"
    build_s = make_store(url, leads)
    first = rebuild_once(url)
    again = rebuild_once(url)
    size = (workdir / "rebuild.db").stat().st_size
    return {
        "leads": leads,
        "events": 4 * leads,
        "store": "sqlite",
        "store_build_s": round(build_s, 1),
        "store_mb": round(size / 1e6, 1),
        "rebuild_empty": first,
        "rebuild_unchanged": again,
        "recovery": recovery(url),
    }


def rebuild_line(body: dict[str, Any]) -> str:
    first, again, rec = body["rebuild_empty"], body["rebuild_unchanged"], body["recovery"]
    return (
        f"rebuild: {body['leads']:,} leads ({body['events']:,} events): "
        f"{first['seconds']:.1f}s, peak RSS {first['peak_rss_mb']:.0f} MB "
        f"(anonymous {first['peak_anon_mb']:.0f} MB); unchanged {again['seconds']:.1f}s, "
        f"{again['peak_rss_mb']:.0f} MB ({again['peak_anon_mb']:.0f}); recovery of "
        f"{rec['leads']:,} leads {rec['recover_s']:.1f}s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.rebuild", description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--recover", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.recover:
        print(json.dumps(recover_partition(args.recover)), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="leadflow-rebuild-") as workdir:
        body = run_rebuild(Path(workdir), args.leads)
    print(json.dumps(body, indent=1))
    print(rebuild_line(body), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
