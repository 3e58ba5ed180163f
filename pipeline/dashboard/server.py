"""Serving the dashboard: on the worker's web server, or alone with `leadflow dashboard`."""

from __future__ import annotations

import asyncio
import mimetypes
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from sqlalchemy import Engine

from leadflow.pipeline.dashboard.pages import render_page
from leadflow.pipeline.reporting.html import BASE, STATIC_DIR
from leadflow.pipeline.reporting.queries import build_report, open_engine
from leadflow.schemas.errors import LeadflowError

STATIC_FILES = frozenset({"chart.umd.min.js", "dashboard.js", "dashboard.css"})


def static_asset(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of one of our static files, or None (no path tricks)."""
    if name not in STATIC_FILES:
        return None
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return (STATIC_DIR / name).read_bytes(), content_type


def register_pages(app: Any, store: Engine) -> None:
    """Add /dashboard, /dashboard/lead/{lead_id} and /dashboard/static/{name} to a Faust app."""

    @app.page(BASE)  # type: ignore[untyped-decorator]
    async def dashboard_page(web: Any, request: Any) -> Any:
        status, body = await _render_async(store, request.query)
        return web.html(body, status=status)

    @app.page(BASE + "/lead/{lead_id}")  # type: ignore[untyped-decorator]
    async def dashboard_lead_page(web: Any, request: Any, lead_id: str) -> Any:
        status, body = await _render_async(store, {**request.query, "lead": lead_id})
        return web.html(body, status=status)

    @app.page(BASE + "/static/{name}")  # type: ignore[untyped-decorator]
    async def dashboard_static(web: Any, request: Any, name: str) -> Any:
        found = static_asset(name)
        if found is None:
            return web.text("not found", status=404)
        body, content_type = found
        return web.bytes(body, content_type=content_type, headers={"Cache-Control": "max-age=300"})


def make_web_app(engine: Engine) -> Any:
    """The same pages as an aiohttp application (for ``leadflow dashboard``)."""
    from aiohttp import web

    async def dashboard(request: web.Request) -> web.Response:
        params = dict(request.query)
        if "lead_id" in request.match_info:
            params["lead"] = request.match_info["lead_id"]
        status, body = await _render_async(engine, params)
        return web.Response(text=body, status=status, content_type="text/html")

    async def static(request: web.Request) -> web.Response:
        found = static_asset(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, content_type = found
        return web.Response(
            body=body, content_type=content_type, headers={"Cache-Control": "max-age=300"}
        )

    async def root(request: web.Request) -> web.Response:
        raise web.HTTPFound(BASE)

    application = web.Application()
    application.router.add_get("/", root)
    application.router.add_get(BASE, dashboard)
    application.router.add_get(BASE + "/", dashboard)
    application.router.add_get(BASE + "/lead/{lead_id}", dashboard)
    application.router.add_get(BASE + "/static/{name}", static)
    return application


def serve_dashboard(
    database_url: str,
    host: str,
    port: int,
    out: TextIO = sys.stdout,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """``leadflow dashboard``: serve the pages from the store until Ctrl-C or SIGTERM."""
    engine = open_engine(database_url)
    try:
        build_report(engine)  # a missing or unreachable store fails now, in one sentence
        return asyncio.run(_serve(engine, host, port, out, on_ready))
    finally:
        engine.dispose()


async def _render_async(engine: Engine, params: Mapping[str, str]) -> tuple[int, str]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, render_page, engine, dict(params))


async def _serve(
    engine: Engine,
    host: str,
    port: int,
    out: TextIO,
    on_ready: Callable[[str], None] | None,
) -> int:
    from aiohttp import web

    runner = web.AppRunner(make_web_app(engine), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as error:
            raise LeadflowError(
                f"cannot serve the dashboard on {host}:{port} ({error.strerror or error});"
                " choose another --port or stop what uses it"
            ) from None
        url = f"http://{host}:{port}{BASE}"
        print(f"leadflow: dashboard at {url} (Ctrl-C stops it)", file=out, flush=True)
        if on_ready is not None:
            on_ready(url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
