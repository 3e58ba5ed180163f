"""The funnel dashboard: server-rendered HTML over the shared store, in the worker or on its own."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, TextIO

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from sqlalchemy import Connection, Engine, Table, inspect, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from agents.fold import STAGES
from pipeline.errors import LeadflowError, StoreError
from pipeline.report import (
    ATTRIBUTION_MODELS,
    DIMENSIONS,
    SLA_STATUSES,
    UNKNOWN,
    Report,
    ReportQuery,
    build_report,
    open_engine,
    percent,
)
from sinks.models import Attribution, HandoffSla, LeadLifecycle, LeadStageTransition

WEB_DIR = Path(__file__).parent / "web"
STATIC_DIR = WEB_DIR / "static"
STATIC_FILES = frozenset({"chart.umd.min.js", "dashboard.js", "dashboard.css"})
BASE = "/dashboard"
CHOICES_LIMIT = 500
SUCCESS_STAGES = ("lead", "mql", "sal", "sql", "won")

_lifecycle = LeadLifecycle.__table__
_transitions = LeadStageTransition.__table__
_sla = HandoffSla.__table__
_attribution: Table = Attribution.__table__  # type: ignore[assignment]


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadView:
    """One lead's rows for the lookup: lifecycle, transitions and SLA by cycle, attribution."""

    lifecycle: dict[str, Any]
    transitions: list[dict[str, Any]]
    sla: list[dict[str, Any]]
    attribution: list[dict[str, Any]]


@dataclass(frozen=True)
class DashboardData:
    """Everything one page shows."""

    report: Report
    choices: Mapping[str, list[str]]
    lead_query: str = ""
    lead: LeadView | None = None
    errors: list[str] = field(default_factory=list)


def parse_params(params: Mapping[str, str]) -> tuple[ReportQuery, str, list[str]]:
    """GET parameters (since, until, source, campaign, by, lead) as a query; bad ones are dropped.

    Returns the query, the lead id asked for ('' for none) and one sentence per bad parameter.
    """
    errors: list[str] = []
    dates: dict[str, date | None] = {}
    for name in ("since", "until"):
        text = (params.get(name) or "").strip()
        dates[name] = None
        if text:
            try:
                dates[name] = date.fromisoformat(text)
            except ValueError:
                errors.append(f"Ignored {name}={text!r}: give a date such as 2026-03-31.")
    since, until = dates["since"], dates["until"]
    if since and until and since > until:
        errors.append("Ignored the period: 'since' comes after 'until'.")
        since = until = None
    by = (params.get("by") or "source").strip()
    if by not in DIMENSIONS:
        errors.append(f"Ignored by={by!r}: choose one of {', '.join(DIMENSIONS)}.")
        by = "source"
    query = ReportQuery(
        since=since,
        until=until,
        source=(params.get("source") or "").strip() or None,
        campaign=(params.get("campaign") or "").strip() or None,
        by=by,
        details=True,
    )
    return query, (params.get("lead") or "").strip()[:128], errors


def load_dashboard(engine: Engine, params: Mapping[str, str]) -> DashboardData:
    """Read what a dashboard page with these GET parameters shows (blocking: run it off-loop)."""
    query, lead_id, errors = parse_params(params)
    report = build_report(engine, query)
    try:
        with engine.connect() as conn:
            choices = _choices(conn)
            lead = _read_lead(conn, lead_id) if lead_id else None
    except DBAPIError as error:
        raise StoreError(f"Cannot read the store ({str(error.orig or error)[:200]}).") from error
    return DashboardData(report, choices, lead_id, lead, errors)


def _choices(conn: Connection) -> dict[str, list[str]]:
    out = {}
    for name, col in (("sources", _lifecycle.c.source), ("campaigns", _lifecycle.c.campaign_id)):
        query = select(col).distinct().where(col.is_not(None)).order_by(col).limit(CHOICES_LIMIT)
        out[name] = [str(v) for v in conn.execute(query).scalars()]
        out[name].append(UNKNOWN)
    return out


def _read_lead(conn: Connection, lead_id: str) -> LeadView | None:
    row = conn.execute(select(_lifecycle).where(_lifecycle.c.lead_id == lead_id)).mappings().first()
    if row is None:
        return None
    t = _transitions.c
    transitions = [
        dict(r) for r in conn.execute(select(_transitions).where(t.lead_id == lead_id)).mappings()
    ]
    transitions.sort(key=lambda r: (r["cycle_no"], r["entered_at"], _stage_order(r["stage"])))
    s = _sla.c
    sla_query = select(_sla).where(s.lead_id == lead_id).order_by(s.cycle_no)
    sla = [dict(r) for r in conn.execute(sla_query).mappings()]
    attribution: list[dict[str, Any]] = []
    if inspect(conn).has_table("attribution"):
        a = _attribution.c
        rows = conn.execute(select(a.campaign_id, a.model, a.credit).where(a.lead_id == lead_id))
        order = {m: i for i, m in enumerate(ATTRIBUTION_MODELS)}
        attribution = sorted(
            ({"campaign_id": c, "model": m, "credit": Decimal(str(v))} for c, m, v in rows),
            key=lambda r: (order.get(r["model"], len(order)), r["campaign_id"]),
        )
    return LeadView(dict(row), transitions, sla, attribution)


def _stage_order(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


# -- rendering (pure) ---------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(WEB_DIR / "templates")),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {rest % 60:02d}s"


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _credit(value: Decimal) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def _time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def page_model(report: Report) -> dict[str, Any]:
    """The report as display rows (strings), and the chart data, for the template."""
    funnel = report.funnel
    rates = {step.split("->")[1]: rate for step, rate in funnel.conversion.items()}
    details = report.details
    by = report.query.by
    groups = report.funnel_by_source if by == "source" else report.breakdown
    page: dict[str, Any] = {
        "kpis": {
            "leads": funnel.stages.get("lead", 0),
            "mql": funnel.stages.get("mql", 0),
            "won": funnel.stages.get("won", 0),
            "p50": _duration(report.speed_to_lead.p50_seconds),
        },
        "funnel": [
            {
                "stage": stage,
                "leads": n,
                "conversion": percent(rates[stage]) if stage in rates else "",
            }
            for stage, n in funnel.stages.items()
        ],
        "by": by,
        "breakdown_stages": list(funnel.stages),
        "breakdown": [
            {
                "key": key,
                "counts": [f.stages.get(stage, 0) for stage in funnel.stages],
                "win_rate": percent(
                    f.stages.get("won", 0) / f.stages["lead"] if f.stages.get("lead") else None
                ),
            }
            for key, f in groups.items()
        ],
        "speed": {
            "count": report.speed_to_lead.count,
            "p50": _duration(report.speed_to_lead.p50_seconds),
            "p90": _duration(report.speed_to_lead.p90_seconds),
        },
        "sla": dict(report.sla),
        "revenue": [
            {"currency": c, "deals": r.won_deals, "amount": _money(r.won_amount)}
            for c, r in report.revenue.items()
        ],
        "goals": [
            {
                "period": p.goal.period,
                "label": f"{p.goal.metric} {p.goal.currency}".strip(),
                "key": f"{p.goal.period}.{p.goal.metric}.{p.goal.currency or 'all'}",
                "actual": _money(p.actual),
                "target": _money(p.goal.target),
                "meter": min(1.0, p.ratio or 0.0),
                "progress": percent(p.ratio),
            }
            for p in report.goals
        ],
        "speed_histogram": [],
        "sla_by_owner": [],
        "rejections": [],
        "attribution": None,
        "models": list(ATTRIBUTION_MODELS),
    }
    charts: dict[str, Any] = {
        "funnel": {
            "labels": list(SUCCESS_STAGES),
            "datasets": [
                {"label": "leads", "data": [funnel.stages.get(s, 0) for s in SUCCESS_STAGES]}
            ],
        },
        "goals": {
            "labels": [row["label"] + " " + row["period"] for row in page["goals"]],
            "horizontal": True,
            "datasets": [
                {"label": "actual", "data": [float(p.actual) for p in report.goals]},
                {
                    "label": "target",
                    "data": [float(p.goal.target) for p in report.goals],
                    "color": "#cbd5e1",
                },
            ],
        },
    }
    if details is not None:
        page["speed_histogram"] = list(details.speed_histogram.items())
        charts["speed"] = {
            "labels": list(details.speed_histogram),
            "datasets": [{"label": "responses", "data": list(details.speed_histogram.values())}],
        }
        page["sla_by_owner"] = [
            {"owner": owner, **{s: statuses.get(s, 0) for s in SLA_STATUSES}}
            for owner, statuses in details.sla_by_owner.items()
        ]
        colors = {"met": "#16a34a", "breached": "#dc2626", "pending": "#f59e0b"}
        charts["sla"] = {
            "labels": list(details.sla_by_owner),
            "stacked": True,
            "horizontal": True,
            "datasets": [
                {
                    "label": status,
                    "color": colors[status],
                    "data": [details.sla_by_owner[o].get(status, 0) for o in details.sla_by_owner],
                }
                for status in SLA_STATUSES
            ],
        }
        page["rejections"] = [
            {"campaign": campaign, "reason": reason, "leads": n}
            for campaign, reasons in details.rejections_by_campaign.items()
            for reason, n in reasons.items()
        ]
        reasons = sorted({r for rs in details.rejections_by_campaign.values() for r in rs})
        charts["rejections"] = {
            "labels": list(details.rejections_by_campaign),
            "stacked": True,
            "horizontal": True,
            "datasets": [
                {
                    "label": reason,
                    "data": [rs.get(reason, 0) for rs in details.rejections_by_campaign.values()],
                }
                for reason in reasons
            ],
        }
        if details.attribution is not None:
            page["attribution"], charts["attribution"] = _attribution_view(details.attribution)
    return {"page": page, "charts": charts}


def _attribution_view(lines: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    campaigns = sorted({line.campaign_id for line in lines})
    credit = {(line.campaign_id, line.model): line.credit for line in lines}
    leads: dict[str, int] = {}
    revenue: dict[str, Mapping[str, Decimal]] = {}
    for line in lines:
        leads[line.campaign_id] = max(leads.get(line.campaign_id, 0), line.leads)
        if line.model == "w_shaped":
            revenue[line.campaign_id] = line.revenue
    rows = [
        {
            "campaign": c,
            "credits": [(m, _credit(credit.get((c, m), Decimal(0)))) for m in ATTRIBUTION_MODELS],
            "leads": leads.get(c, 0),
            "revenue": ", ".join(f"{_money(v)} {cur}" for cur, v in revenue.get(c, {}).items())
            or "-",
        }
        for c in campaigns
    ]
    chart = {
        "labels": campaigns,
        "datasets": [
            {"label": m, "data": [float(credit.get((c, m), 0)) for c in campaigns]}
            for m in ATTRIBUTION_MODELS
        ],
    }
    return rows, chart


def _lead_model(lead: LeadView) -> dict[str, Any]:
    life = lead.lifecycle
    sla_by_cycle = {row["cycle_no"]: row for row in lead.sla}
    cycles: dict[int, list[dict[str, Any]]] = {}
    for t in lead.transitions:
        cycles.setdefault(int(t["cycle_no"]), []).append(
            {"stage": t["stage"], "entered_at": _time(t["entered_at"]), "inferred": t["inferred"]}
        )
    for number in sla_by_cycle:
        cycles.setdefault(int(number), [])
    amount = life.get("amount")
    return {
        "lead_id": life["lead_id"],
        "stage": life.get("stage") or "no stage yet",
        "cycle_no": life.get("cycle_no"),
        "source": life.get("source") or UNKNOWN,
        "campaign": life.get("campaign_id") or UNKNOWN,
        "owner": life.get("owner_id") or "-",
        "event_count": life.get("event_count"),
        "amount": f"{_money(Decimal(str(amount)))} {life.get('currency') or ''}".strip()
        if amount is not None
        else "",
        "cycles": [
            {
                "number": number,
                "transitions": cycles[number],
                "sla": _sla_model(sla_by_cycle.get(number)),
            }
            for number in sorted(cycles)
        ],
        "attribution": [{**row, "credit": _credit(row["credit"])} for row in lead.attribution],
    }


def _sla_model(row: Mapping[str, Any] | None) -> dict[str, str] | None:
    if row is None:
        return None
    response = "none yet"
    if row.get("responded_at") is not None:
        response = (
            f"{row.get('response_type')} at {_time(row['responded_at'])}"
            f" ({_duration(row.get('response_seconds'))})"
        )
    return {
        "status": str(row["status"]),
        "mql_at": _time(row["mql_at"]),
        "deadline": _time(row["deadline"]),
        "response": response,
    }


def _chart_json(charts: Mapping[str, Any]) -> Markup:
    text = json.dumps(charts, separators=(",", ":"))
    # Safe inside <script type="application/json">: no markup character survives.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _form(query: ReportQuery) -> dict[str, str]:
    return {
        "since": query.since.isoformat() if query.since else "",
        "until": query.until.isoformat() if query.until else "",
        "source": query.source or "",
        "campaign": query.campaign or "",
        "by": query.by,
    }


def render_dashboard(data: DashboardData, *, base: str = BASE, now: datetime | None = None) -> str:
    """The dashboard page of ``data`` (assets linked under ``base``/static)."""
    model = page_model(data.report)
    return (
        _environment()
        .get_template("dashboard.html")
        .render(
            title="leadflow funnel dashboard",
            generated_at=_time(now or datetime.now(UTC)),
            inline=None,
            base=base,
            filters=data.report.query.filters(),
            form=_form(data.report.query),
            choices=data.choices,
            dimensions=DIMENSIONS,
            errors=data.errors,
            page=model["page"],
            chart_json=_chart_json(model["charts"]),
            lead_query=data.lead_query,
            lead=_lead_model(data.lead) if data.lead else None,
        )
    )


def _inline_script(name: str) -> Markup:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    return Markup(text.replace("</", "<\\/"))


def render_report_html(report: Report, *, now: datetime | None = None) -> str:
    """A self-contained HTML report (styles, chart library and data inline), to send by mail."""
    model = page_model(report)
    css = (STATIC_DIR / "dashboard.css").read_text(encoding="utf-8").replace("</", "<\\/")
    return (
        _environment()
        .get_template("dashboard.html")
        .render(
            title="leadflow funnel report",
            generated_at=_time(now or datetime.now(UTC)),
            inline={
                "css": Markup(css),
                "chart_js": _inline_script("chart.umd.min.js"),
                "dashboard_js": _inline_script("dashboard.js"),
            },
            base=BASE,
            filters=report.query.filters(),
            form=_form(report.query),
            choices={"sources": [], "campaigns": []},
            dimensions=DIMENSIONS,
            errors=[],
            page=model["page"],
            chart_json=_chart_json(model["charts"]),
            lead_query="",
            lead=None,
        )
    )


def render_error(message: str, *, base: str = BASE) -> str:
    """A small page saying what went wrong and what to do."""
    return (
        _environment()
        .from_string(
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            "<title>leadflow dashboard</title></head>"
            "<body style='font-family:system-ui;margin:2rem'>"
            "<h1>leadflow dashboard</h1><p role=alert>{{ message }}</p>"
            "<p><a href='{{ base }}'>try again</a></p></body></html>"
        )
        .render(message=message, base=base)
    )


def render_page(engine: Engine, params: Mapping[str, str]) -> tuple[int, str]:
    """Read and render one page: (HTTP status, HTML). Blocking: call it from an executor."""
    try:
        data = load_dashboard(engine, params)
    except LeadflowError as error:
        return 503, render_error(str(error))
    except SQLAlchemyError as error:
        return 503, render_error(f"Cannot read the store ({type(error).__name__}); retry later.")
    status = 200
    if data.lead_query and data.lead is None:
        status = 404
    return status, render_dashboard(data)


def static_asset(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of one of our static files, or None (no path tricks)."""
    if name not in STATIC_FILES:
        return None
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return (STATIC_DIR / name).read_bytes(), content_type


# -- serving ------------------------------------------------------------------------------------


async def _render_async(engine: Engine, params: Mapping[str, str]) -> tuple[int, str]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, render_page, engine, dict(params))


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
