"""The state phase: worker memory per 100,000 leads, and throughput with few against many leads.

Two workers run side by side on one broker, each with its own topics, group and SQLite store:
one holds ``state_small`` leads, the other ``state_big``. Both are loaded (one
``lead.created`` per lead), then fed windows of ``lead.touch`` events on random leads of their
own, one window at a time and in the order small, big, big, small, small, big, ... so that a
drift of the machine's speed over the minutes of the phase weighs on both sides alike. Only one
worker has work at any moment; the other idles with its state in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any

from bench.harness import PARTITIONS, Context, Store, Worker, create_topics, family, fmt, say

POLL_S = 0.1  # /metrics while a window runs (each read costs the worker a little CPU)
# The base of every timestamp: old enough that a million seconds of touches stay in the past.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)


def publish_batches(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Publish (key, value) records as Kafka record batches, keys partitioned with murmur2.

    The harness's kafka-python producer takes about 40 µs a message here (a million leads:
    over two minutes, competing with the worker for the cores); aiokafka record batches take
    about 3 µs.
    """
    from aiokafka import AIOKafkaProducer

    from leadflow.agents.partitioning import key_hash
    from leadflow.agents.ports import Record
    from leadflow.pipeline.faust.record_batches import send_records

    async def run() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", max_request_size=2 * 1024 * 1024
        )
        await producer.start()
        sent = 0
        try:
            chunk: list[Record] = []
            pending: list[Any] = []
            for key, value in records:
                chunk.append((key_hash(key) % PARTITIONS, key, value))
                if len(chunk) == 20_000:
                    pending += await send_records(producer, topic, chunk)
                    sent += len(chunk)
                    chunk = []
                if len(pending) > 64:
                    await asyncio.gather(*pending)
                    pending.clear()
            pending += await send_records(producer, topic, chunk)
            sent += len(chunk)
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        return sent

    return asyncio.run(run())


def created(prefix: str, leads: int) -> Iterator[tuple[bytes, bytes]]:
    for i in range(leads):
        lead = f"{prefix}-{i}"
        at = (BASE + timedelta(seconds=i % 86_400)).strftime("%Y-%m-%dT%H:%M:%SZ")
        yield (
            lead.encode(),
            (
                f'{{"event_id":"{lead}-c","event_type":"lead.created","lead_id":"{lead}",'
                f'"occurred_at":"{at}","source":"paid_search","campaign_id":"cmp-paid_search-01"}}'
            ).encode(),
        )


def touches(
    prefix: str, leads: int, first: int, count: int, rng: random.Random
) -> list[tuple[bytes, bytes]]:
    """``count`` touches on random leads, numbered (and timed a second apart) from ``first``."""
    later = BASE + timedelta(days=2)
    out = []
    for j in range(first, first + count):
        lead = f"{prefix}-{rng.randrange(leads)}"
        at = (later + timedelta(seconds=j)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(
            (
                lead.encode(),
                (
                    f'{{"event_id":"{lead}-t{j}","event_type":"lead.touch","lead_id":"{lead}",'
                    f'"occurred_at":"{at}","campaign_id":"cmp-email-0{j % 9 + 1}",'
                    '"channel":"email"}'
                ).encode(),
            )
        )
    return out


@dataclass
class StateWorker:
    """One worker with its leads, and what was measured of it."""

    key: str
    leads: int
    topic: str
    store: Store
    worker: Worker
    rng: random.Random
    published: int = 0  # messages on its topic: one lead.created per lead, then the touches
    rss: dict[str, float] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    windows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, ctx: Context, key: str, leads: int) -> StateWorker:
        name = f"st-{key}"
        topics = (f"bench-{name}-marketing-{ctx.tag}", f"bench-{name}-sales-{ctx.tag}")
        create_topics(ctx.bootstrap, topics)
        store = Store("sqlite", ctx.workdir, f"state-{key}-{ctx.tag}")
        worker = Worker(ctx, f"bench-{name}-{ctx.tag}", store, topics)
        return cls(key, leads, topics[0], store, worker, random.Random(leads))

    @property
    def prefix(self) -> str:
        return f"{self.key}{self.leads}"

    def window(
        self, ctx: Context, size: int, timeout: float, idle: Sequence[int] = ()
    ) -> dict[str, Any]:
        """Publish ``size`` touches and time them: events done between the moments 10 % and
        90 % of them were done, over the seconds between (both after publishing ended).

        Also the share of a core each process used from then until the window was done
        (``idle``: the other workers' PIDs)."""
        batch = touches(self.prefix, self.leads, self.published - self.leads, size, self.rng)
        base = self.worker.processed()
        if base != self.published:
            raise RuntimeError(f"{self.key}: {base} processed of {self.published} before a window")
        started = time.monotonic()
        publish_batches(ctx.bootstrap, self.topic, batch)
        published = time.monotonic()
        groups = self.process_groups(ctx, idle)
        cpu_before = cpu_seconds(groups)
        self.published += size
        polls: list[tuple[float, int]] = []
        while True:
            now = time.monotonic()
            count = self.worker.processed()
            polls.append((now, count))
            if count >= self.published:
                break
            if now - started > timeout:
                raise TimeoutError(f"{self.key}: window not done within {timeout:g}s")
            time.sleep(POLL_S)
        spent = cpu_seconds(groups)
        wall = time.monotonic() - published
        body: dict[str, Any] = {
            "events": size,
            "publish_s": round(published - started, 3),
            "end_to_end_s": round(polls[-1][0] - started, 3),
            "cpu_share": {
                name: round((spent[name] - cpu_before[name]) / wall, 2) for name in groups
            },
        }
        body.update(steady_rate([p for p in polls if p[0] >= published], base, size))
        self.windows.append(body)
        return body

    def process_groups(self, ctx: Context, idle: Sequence[int]) -> dict[str, list[int]]:
        """PIDs by role: this worker, its store writer, the broker, the idle workers, us."""
        import psutil

        def pids(pid: int) -> list[int]:
            try:
                return [process.pid for process in family(pid)]
            except psutil.Error:
                return []

        return {
            "worker": [self.worker.pid],
            "store_writer": pids(self.worker.pid)[1:],
            "broker": [ctx.broker_pid] if ctx.broker_pid else [],
            "idle_workers": [pid for other in idle for pid in pids(other)],
            "harness": [os.getpid()],
        }

    def summary(self) -> dict[str, Any]:
        rates = [w["events_per_s"] for w in self.windows if "events_per_s" in w]
        shares = [w["cpu_share"] for w in self.windows]
        return {
            "leads": self.leads,
            "events_per_s": mean(rates) if rates else None,
            "cpu_share_mean": {k: round(mean(c[k] for c in shares), 2) for k in shares[0]}
            if shares
            else {},
            "windows": self.windows,
            "load": self.load,
            "rss_mb": self.rss,
            "store_totals": self.store.totals(),
            "expected_totals": (self.leads, self.published, 0),
        }


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """User plus system CPU seconds of each group of processes so far."""
    import psutil

    out = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
        out[name] = total
    return out


def steady_rate(polls: Sequence[tuple[float, int]], base: int, size: int) -> dict[str, Any]:
    """Throughput between the first polls at which 10 % and 90 % of a window were done.

    The count grows a batch at a time, so the span holds whole batches; the trimmed ends are
    the pipeline filling up and the last, partly filled batch.
    """
    marks = []
    for share in (0.1, 0.9):
        target = base + share * size
        mark = next(((t, n) for t, n in polls if n >= target), None)
        if mark is None:
            return {}
        marks.append(mark)
    (t0, n0), (t1, n1) = marks
    if t1 <= t0:
        return {}
    return {
        "events_per_s": (n1 - n0) / (t1 - t0),
        "steady_events": n1 - n0,
        "steady_s": round(t1 - t0, 3),
    }


def order(windows: int) -> list[str]:
    """small, big, big, small, small, big, ...: each side's mean position is the same."""
    pattern = ("small", "big", "big", "small")
    return [pattern[i % 4] for i in range(2 * windows)]


def run_state(ctx: Context, load_timeout: float) -> dict[str, Any]:
    """Load the workers, time their windows in turn; figures per side and their ratio."""
    sizes = ctx.sizes
    # One small worker per small window: a window adds W / leads touches to each small lead
    # and a lead's update costs more the more events it holds (a few percent per event), so
    # a second window on the same 10,000 leads would be slower for that reason alone; the
    # big worker's leads gain W / 1,000,000 each.
    smalls = [
        StateWorker.start(ctx, f"small{i}", sizes.state_small) for i in range(sizes.state_windows)
    ]
    workers = [*smalls, StateWorker.start(ctx, "big", sizes.state_big)]
    big = workers[-1]
    try:
        for side in workers:
            side.worker.wait_ready(90)
            side.rss["ready"] = round(side.worker.rss_mb(), 1)
        load(ctx, workers, load_timeout)
        pairs: list[tuple[str, float | None]] = []
        unused = iter(smalls)
        for key in order(sizes.state_windows):
            side = next(unused) if key == "small" else big
            idle = [other.worker.pid for other in workers if other is not side]
            body = side.window(ctx, sizes.state_window, timeout=120, idle=idle)
            shares = ", ".join(f"{k} {v:.0%}" for k, v in body["cpu_share"].items())
            say(
                f"state window {side.key} ({side.leads:,} leads): "
                f"{body.get('events_per_s', float('nan')):,.0f} events/s; CPU {shares}"
            )
            pairs.append((key, body.get("events_per_s")))
        for side in workers:
            side.rss["end"] = round(side.worker.rss_mb(), 1)
        return summarize(smalls, big, pairs)
    finally:
        for side in workers:
            side.worker.stop()
        for side in workers:
            side.store.close()


def load(ctx: Context, sides: list[StateWorker], timeout: float) -> None:
    """Publish every lead.created and wait until each worker has folded all of its own."""
    started = time.monotonic()
    for side in sides:
        t = time.monotonic()
        side.published = publish_batches(
            ctx.bootstrap, side.topic, created(side.prefix, side.leads)
        )
        side.load["publish_s"] = round(time.monotonic() - t, 2)
    waiting = list(sides)
    last_sample = started
    while waiting:
        now = time.monotonic()
        if now - started > timeout:
            raise TimeoutError(f"state not loaded within {timeout:g}s")
        for side in list(waiting):
            done = side.worker.processed()
            if done >= side.published:
                seconds = now - started
                side.load.update(seconds=round(seconds, 1), leads_per_s=side.leads / seconds)
                side.rss["loaded"] = round(side.worker.rss_mb(), 1)
                waiting.remove(side)
                say(f"state load {side.key}: {side.leads:,} leads in {seconds:.0f}s")
            elif now - last_sample >= 30:
                say(f"state load {side.key}: {done:,} of {side.published:,}")
        if now - last_sample >= 30:
            last_sample = now
        time.sleep(0.5)


def summarize(
    smalls: list[StateWorker], big: StateWorker, pairs: list[tuple[str, float | None]]
) -> dict[str, Any]:
    parts = [side.summary() for side in smalls]
    rates = [part["events_per_s"] for part in parts if part["events_per_s"]]
    small = {
        "leads": smalls[0].leads,
        "events_per_s": mean(rates) if rates else None,
        "workers": parts,
    }
    out: dict[str, Any] = {"small": small, "big": big.summary(), "order": pairs}
    out["stores_complete"] = all(
        side["store_totals"] == side["expected_totals"] for side in [*parts, out["big"]]
    )
    rate_small, rate_big = out["small"]["events_per_s"], out["big"]["events_per_s"]
    if rate_small and rate_big:
        out["throughput_big_vs_small"] = rate_big / rate_small
        # The ratio of each adjacent pair (small, big) or (big, small): how much it spreads.
        adjacent = [dict(pair) for pair in zip(pairs[::2], pairs[1::2], strict=True)]
        out["throughput_big_vs_small_pairs"] = [
            pair["big"] / pair["small"] for pair in adjacent if pair["big"] and pair["small"]
        ]
    first = smalls[0]
    if "end" in first.rss and "end" in big.rss:
        out["rss_per_100k_mb"] = (
            (big.rss["end"] - first.rss["end"]) / (big.leads - first.leads) * 1e5
        )
    out["method"] = (
        "Workers side by side, each with its own topics, consumer group and SQLite store: "
        f"{len(smalls)} with {first.leads:,} leads, one with {big.leads:,} (one lead.created "
        "each). Then windows of lead.touch events on random leads of one worker at a time, in "
        "the order small, big, big, small, ..., each small window on a small worker of its "
        "own (so every small window meets leads with the same few events, as the big one "
        "does); a window's throughput = events processed "
        "between the first /metrics polls (every 100 ms, after publishing the window ended) at "
        "which 10 % and 90 % of it were done / the seconds between. events_per_s of a side = "
        "the mean of its windows; throughput_big_vs_small = big / small. rss_per_100k_mb = "
        "(RSS of the big worker - RSS of the first small one, each with its store-writer "
        "child, after the last window) / (difference in leads) * 100,000: the fixed and "
        "processing memory of a worker cancel. Every store is checked to hold every lead and "
        "every event at the end (stores_complete)."
    )
    return out


def state_line(body: dict[str, Any]) -> str:
    small, big = body["small"], body["big"]
    return (
        f"state: {small['leads']:,} leads {fmt(small['events_per_s'])} events/s, "
        f"{big['leads']:,} leads {fmt(big['events_per_s'])} events/s, big/small "
        f"{fmt(body.get('throughput_big_vs_small'), 2)} (pairs "
        + ", ".join(fmt(r, 2) for r in body.get("throughput_big_vs_small_pairs", []))
        + f"); {fmt(body.get('rss_per_100k_mb'), 1)} MB per 100,000 leads"
    )
