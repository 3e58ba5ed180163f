"""The ingest phase of `make bench`: events/s through `leadflow ingest` at 200 events a request.

One ingest process on the run's broker; one client, then four concurrent clients, each sending
JSON arrays of 200 valid simulated events and waiting for every answer (a 200 means the broker
acknowledged all 200). Latency is per request, from sending it to reading the answer.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import Context, say

PER_REQUEST = 200
TOKEN = "bench-ingest-token-5d8e0c"


def _bodies(leads: int) -> list[bytes]:
    from leadflow.pipeline.publish.simulate import simulate

    start = datetime.now(UTC) - timedelta(days=3)
    values = [m.value for m in simulate(leads, seed=77, start=start) if m.valid]
    cut = len(values) - len(values) % PER_REQUEST
    return [
        b"[" + b",".join(values[i : i + PER_REQUEST]) + b"]" for i in range(0, cut, PER_REQUEST)
    ]


def _start(ctx: Context) -> tuple[Any, str]:
    from leadflow.pipeline.kafka.broker import free_port

    tokens = ctx.workdir / "ingest-tokens.txt"
    tokens.write_text(f"bench all {TOKEN}\n", encoding="utf-8")
    port = free_port()
    env = {
        "LEADFLOW_BROKER": f"kafka://{ctx.bootstrap}",
        "LEADFLOW_APP_ID": f"bench-ingest-{ctx.tag}",
        "LEADFLOW_INGEST_PORT": str(port),
        "LEADFLOW_INGEST_TOKENS": str(tokens),
        "LEADFLOW_TOPIC_MARKETING": f"bench-ingest-marketing-{ctx.tag}",
        "LEADFLOW_TOPIC_SALES": f"bench-ingest-sales-{ctx.tag}",
        "LEADFLOW_TOPIC_LIFECYCLE": f"bench-ingest-lifecycle-{ctx.tag}",
        "LEADFLOW_TOPIC_DEAD_LETTERS": f"bench-ingest-dead-letters-{ctx.tag}",
    }
    argv = [sys.executable, "-m", "leadflow", "ingest"]
    proc = ctx.children.spawn(argv, ctx.workdir / "ingest.log", env)
    return proc, f"http://127.0.0.1:{port}"


async def _healthy(url: str, timeout: float) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/v1/health") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"ingest not healthy after {timeout:g}s")


async def _round(url: str, bodies: list[bytes], clients: int) -> dict[str, Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    queue = list(bodies)
    latencies: list[float] = []

    async def client(session: aiohttp.ClientSession) -> None:
        while queue:
            body = queue.pop()
            sent = time.perf_counter()
            async with session.post(url + "/v1/events", data=body, headers=headers) as answer:
                result = await answer.json()
            if answer.status != 200 or result.get("accepted") != PER_REQUEST:
                raise RuntimeError(f"ingest answered {answer.status}: {str(result)[:200]}")
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    seconds = time.perf_counter() - started
    latencies.sort()

    def quantile(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "clients": clients,
        "requests": len(bodies),
        "events": len(bodies) * PER_REQUEST,
        "seconds": round(seconds, 3),
        "events_per_s": len(bodies) * PER_REQUEST / seconds,
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "max_ms": 1000 * latencies[-1],
    }


def run_ingest(ctx: Context, timeout: float) -> dict[str, Any]:
    """Ingest throughput and request latency with one and with four clients."""
    bodies = _bodies(max(ctx.sizes.leads // 2, 3000))
    proc, url = _start(ctx)
    try:

        async def body() -> dict[str, Any]:
            await _healthy(url, 60)
            await _round(url, bodies[:10], 1)
            one = await _round(url, bodies, 1)
            four = await _round(url, bodies, 4)
            return {"per_request": PER_REQUEST, "one_client": one, "four_clients": four}

        result: dict[str, Any] = asyncio.run(asyncio.wait_for(body(), timeout))
    finally:
        ctx.children.stop(proc)
    for key in ("one_client", "four_clients"):
        say(f"ingest {key}: {result[key]['events_per_s']:,.0f} events/s")
    return result
