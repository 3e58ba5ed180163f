"""The peers leadflow is compared with, each run as its own process by ``bench/run.py``.

``python -m bench.peers MODE --broker H:P --group G --topics A,B --expected N --result FILE``

- ``raw``: aiokafka consuming the topics and ``json.loads`` on every value, nothing else.
- ``ceiling``: a Faust agent that only ``take()``s batches and parses them (the framework alone).
- ``lanes``: the ``ceiling`` work (batches + parse) through leadflow's own delivery, the batch
  lanes of ``pipeline/lanes.py`` (what leadflow's Faust plumbing alone costs).
- ``naive``: the Faust pattern most users write: one agent, per event a table write and a send.

Each process times itself (first message consumed -> last message processed, monotonic clock)
and writes one JSON object to ``--result`` once it has processed ``--expected`` messages; the
harness then stops it with SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


class Tracker:
    """Counts processed messages; writes the timing once ``expected`` is reached."""

    def __init__(self, mode: str, expected: int, result: Path) -> None:
        self.mode = mode
        self.expected = expected
        self.result = result
        self.count = 0
        self.first: float | None = None
        self.first_batch = 0
        self.bad = 0
        self.done = False

    def add(self, n: int, started: float | None = None) -> None:
        """Record ``n`` finished messages; ``started`` is when the first of them was consumed."""
        if self.first is None:
            self.first = started if started is not None else time.monotonic()
            # Without ``started`` the clock starts after the first batch: leave it uncounted.
            self.first_batch = 0 if started is not None else n
        self.count += n
        if not self.done and self.count >= self.expected:
            self.done = True
            last = time.monotonic()
            seconds = last - self.first
            counted = self.count - self.first_batch
            body = {
                "mode": self.mode,
                "messages": self.count,
                "counted": counted,
                "seconds": seconds,
                "events_per_s": counted / seconds if seconds > 0 else None,
                "bad_json": self.bad,
                "pid": os.getpid(),
            }
            tmp = self.result.with_suffix(".tmp")
            tmp.write_text(json.dumps(body))
            tmp.rename(self.result)


# -- raw: aiokafka + json.loads ----------------------------------------------------------


async def run_raw(args: argparse.Namespace, tracker: Tracker) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *args.topics,
        bootstrap_servers=args.broker,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        rebalance_timeout_ms=2000,
    )
    await consumer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loads = json.loads
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            if not batches:
                continue
            started = time.monotonic() if tracker.first is None else None
            n = 0
            for records in batches.values():
                for record in records:
                    try:
                        loads(record.value)
                    except ValueError:
                        tracker.bad += 1
                    n += 1
            # The clock starts when the first records are handed over: count them too.
            tracker.add(n, started)
    finally:
        await consumer.stop()


# -- Faust peers ---------------------------------------------------------------------------


def faust_app(args: argparse.Namespace, value_serializer: str = "raw") -> Any:
    import faust

    return faust.App(
        args.group,
        broker=f"kafka://{args.broker}",
        key_serializer="raw",
        value_serializer=value_serializer,
        store="memory://",
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=2,
        broker_rebalance_timeout=2,
        broker_heartbeat_interval=0.3,
        stream_wait_empty=False,
        web_enabled=False,
    )


def build_ceiling(args: argparse.Namespace, tracker: Tracker) -> Any:
    app = faust_app(args)
    inputs = app.topic(*args.topics, key_type=bytes, value_type=bytes)
    loads = json.loads

    @app.agent(inputs, name="bench.ceiling")
    async def ceiling(stream: Any) -> None:
        async for values in stream.take(args.batch, within=0.1):
            started = time.monotonic() if tracker.first is None else None
            for value in values:
                try:
                    loads(value)
                except ValueError:
                    tracker.bad += 1
            tracker.add(len(values), started)

    return app


def build_lanes(args: argparse.Namespace, tracker: Tracker) -> Any:
    from leadflow.pipeline.faust.lanes import Lanes
    from leadflow.pipeline.faust.patches import drain as faust_drain

    faust_drain.install()
    app = faust_app(args)
    inputs = app.topic(*args.topics, key_type=bytes, value_type=bytes)
    app.lanes = Lanes()
    lane = app.lanes.add(app.flow_control, args.topics, max(4 * args.batch, 1000))
    loads = json.loads

    @app.agent(inputs, name="bench.lanes")
    async def lanes(stream: Any) -> None:
        ack = app.consumer.ack
        async for messages in lane.batches(args.batch, within=0.1):
            started = time.monotonic() if tracker.first is None else None
            for message in messages:
                try:
                    loads(message.value)
                except ValueError:
                    tracker.bad += 1
            for message in messages:
                ack(message)
            tracker.add(len(messages), started)

    return app


def build_naive(args: argparse.Namespace, tracker: Tracker) -> Any:
    # A typical first Faust app: JSON values, a table of per-lead state, one send per event.
    app = faust_app(args, value_serializer="json")
    inputs = app.topic(*args.topics, key_type=bytes, value_type=bytes, value_serializer="raw")
    out = app.topic(args.out_topic, key_type=str)
    leads = app.Table("naive-leads", default=None, partitions=args.partitions, key_type=str)
    loads = json.loads

    @app.agent(inputs, name="bench.naive")
    async def naive(stream: Any) -> None:
        async for value in stream:
            try:
                event = loads(value)
                lead_id = event["lead_id"]
                event_id = event["event_id"]
                event_type = event["event_type"]
            except (ValueError, KeyError, TypeError):
                tracker.bad += 1
                tracker.add(1)
                continue
            state = leads.get(lead_id) or {"lead_id": lead_id, "events": [], "stage": None}
            if event_id not in state["events"]:
                state["events"].append(event_id)
                state["stage"] = event_type
                state["last_event_at"] = event.get("occurred_at")
                leads[lead_id] = state
                await out.send(key=lead_id, value=state)
            tracker.add(1)

    return app


def run_faust(app: Any) -> None:
    import faust

    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    with contextlib.suppress(SystemExit):
        worker.execute_from_commandline()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.peers")
    parser.add_argument("mode", choices=("raw", "ceiling", "lanes", "naive"))
    parser.add_argument("--broker", required=True, help="host:port")
    parser.add_argument("--group", required=True, help="consumer group / Faust app id")
    parser.add_argument("--topics", required=True, type=lambda s: s.split(","))
    parser.add_argument("--expected", required=True, type=int)
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--out-topic", default="bench-naive-out")
    args = parser.parse_args(argv)
    tracker = Tracker(args.mode, args.expected, args.result)
    if args.mode == "raw":
        asyncio.run(run_raw(args, tracker))
    elif args.mode == "ceiling":
        run_faust(build_ceiling(args, tracker))
    elif args.mode == "lanes":
        run_faust(build_lanes(args, tracker))
    else:
        run_faust(build_naive(args, tracker))
    return 0


if __name__ == "__main__":
    sys.exit(main())
