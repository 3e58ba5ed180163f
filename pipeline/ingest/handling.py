"""What every ingest route shares: the app's keys, the token check, bodies, publishing."""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiohttp import web

from leadflow.pipeline.ingest.bodies import MAX_BODY_BYTES, BodyError, Item, read_body
from leadflow.pipeline.ingest.door import Verdicts
from leadflow.pipeline.ingest.metrics import IngestMetrics
from leadflow.pipeline.ingest.producer import IngestProducer, PublishTimeout
from leadflow.pipeline.ingest.tokens import Token, find_token
from leadflow.pipeline.settings import Settings

PRODUCER: web.AppKey[IngestProducer] = web.AppKey("producer", IngestProducer)
METRICS: web.AppKey[IngestMetrics] = web.AppKey("metrics", IngestMetrics)
TOKENS: web.AppKey[tuple[Token, ...]] = web.AppKey("tokens", tuple)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
_CHUNK = 64 * 1024


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def authorize(request: web.Request) -> Token | web.Response:
    """The caller's token, checked before any of the body is read; else a 401 answer."""
    token = find_token(request.app[TOKENS], request.headers.get("Authorization"))
    if token is None:
        return web.json_response(
            {"error": "missing or unknown bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="leadflow"'},
        )
    return token


async def read_limited(request: web.Request) -> bytes:
    """The decoded body under the 5 MiB limit; a plain body announcing more is refused unread."""
    encoding = request.headers.get("Content-Encoding", "")
    length = request.content_length
    if not encoding and length is not None and length > MAX_BODY_BYTES:
        raise BodyError(413, f"the body is over {MAX_BODY_BYTES} bytes (5 MiB)")
    return await read_body(request.content.iter_chunked(_CHUNK), encoding)


async def publish_verdicts(request: web.Request, verdicts: Verdicts, **extra: int) -> web.Response:
    """Publish what was accepted; answer 200 only once the broker acknowledged all of it."""
    metrics = request.app[METRICS]
    for refusal in verdicts.refused:
        metrics.refused.labels(refusal["reason"]).inc()
    started = time.perf_counter()
    try:
        if verdicts.outgoing:
            await request.app[PRODUCER].publish(verdicts.outgoing)
    except PublishTimeout as exc:
        return error(503, f"{exc}; nothing of this request was accepted, send it again")
    metrics.publish_seconds.observe(time.perf_counter() - started)
    for kind, _, _ in verdicts.outgoing:
        metrics.accepted.labels(kind).inc()
    answer = {"accepted": len(verdicts.outgoing), "refused": verdicts.refused, **extra}
    return web.json_response(answer)


def check_count(request: web.Request, items: Sequence[Item | object]) -> None:
    limit = request.app[SETTINGS].ingest_max_events
    if len(items) > limit:
        raise BodyError(
            413, f"the request holds {len(items)} events, over the limit of {limit} a request"
        )
