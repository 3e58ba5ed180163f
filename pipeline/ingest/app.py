"""The aiohttp application: POST /v1/events, GET /v1/health, GET /metrics, preset hooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from leadflow.pipeline.ingest.bodies import (
    MAX_BODY_BYTES,
    BodyError,
    Item,
    is_json_lines,
    read_body,
    split_json,
    split_json_lines,
)
from leadflow.pipeline.ingest.door import Verdicts, judge
from leadflow.pipeline.ingest.metrics import IngestMetrics
from leadflow.pipeline.ingest.producer import IngestProducer, PublishTimeout
from leadflow.pipeline.ingest.tokens import Token, find_token
from leadflow.pipeline.settings import Settings

log = logging.getLogger(__name__)

PRODUCER: web.AppKey[IngestProducer] = web.AppKey("producer", IngestProducer)
METRICS: web.AppKey[IngestMetrics] = web.AppKey("metrics", IngestMetrics)
TOKENS: web.AppKey[tuple[Token, ...]] = web.AppKey("tokens", tuple)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
_CHUNK = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


async def post_events(request: web.Request) -> web.Response:
    token = authorize(request)
    if isinstance(token, web.Response):
        return token
    try:
        body = await read_limited(request)
        lines = is_json_lines(request.headers.get("Content-Type", ""))
        items = split_json_lines(body) if lines else split_json(body)
        check_count(request, items)
    except BodyError as exc:
        return error(exc.status, exc.message)
    return await publish_verdicts(request, judge(items, token.scope))


async def get_health(request: web.Request) -> web.Response:
    if await request.app[PRODUCER].healthy():
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "the broker does not answer"}, status=503)


async def get_metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "other"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        request.app[METRICS].requests.labels(route, str(exc.status)).inc()
        raise
    request.app[METRICS].requests.labels(route, str(response.status)).inc()
    return response


async def _start(app: web.Application) -> None:
    app[PRODUCER].begin()


async def _stop(app: web.Application) -> None:
    await app[PRODUCER].close()


def build_app(settings: Settings, tokens: tuple[Token, ...]) -> web.Application:
    """The service; hook routes come from the presets named by LEADFLOW_INGEST_PRESETS."""
    from leadflow.pipeline.ingest.hooks import add_hook_routes

    app = web.Application(middlewares=[count_requests])
    app[SETTINGS] = settings
    app[TOKENS] = tokens
    app[METRICS] = IngestMetrics()
    app[PRODUCER] = IngestProducer(settings)
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/v1/health", get_health)
    app.router.add_get("/metrics", get_metrics)
    add_hook_routes(app, settings.ingest_presets)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app
