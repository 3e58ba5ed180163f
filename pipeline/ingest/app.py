"""The aiohttp application: POST /v1/events, GET /v1/health, GET /metrics, preset hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from leadflow.pipeline.ingest.bodies import (
    BodyError,
    is_json_lines,
    split_json,
    split_json_lines,
)
from leadflow.pipeline.ingest.door import judge
from leadflow.pipeline.ingest.handling import (
    METRICS,
    PRODUCER,
    SETTINGS,
    TOKENS,
    authorize,
    check_count,
    error,
    publish_verdicts,
    read_limited,
)
from leadflow.pipeline.ingest.hooks import add_hook_routes
from leadflow.pipeline.ingest.metrics import IngestMetrics
from leadflow.pipeline.ingest.producer import IngestProducer
from leadflow.pipeline.ingest.tokens import Token
from leadflow.pipeline.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
