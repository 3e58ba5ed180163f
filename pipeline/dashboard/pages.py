"""The dashboard's pages: the report with filters and a lead lookup, read per request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, inspect, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from leadflow.pipeline.reporting.html import (
    BASE,
    chart_json,
    fmt_credit,
    fmt_duration,
    fmt_money,
    fmt_time,
    form_fields,
    glance_model,
    jinja_environment,
    page_model,
    trends_model,
)
from leadflow.pipeline.reporting.model import DIMENSIONS, Report, ReportQuery, check_day
from leadflow.pipeline.reporting.queries import build_report
from leadflow.pipeline.reporting.trends import Glance, Trends, read_glance, read_trends
from leadflow.schemas.errors import LeadflowError, StoreError
from leadflow.schemas.vocabulary import ATTRIBUTION_MODELS, STAGES, UNKNOWN
from leadflow.sinks.errors import first_line
from leadflow.sinks.models import (
    ATTRIBUTION,
    LIFECYCLE,
    SLA,
    TRANSITIONS,
)

CHOICES_LIMIT = 500


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
    glance: Glance | None = None
    trends: Trends | None = None


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
                dates[name] = check_day(name, date.fromisoformat(text))
            except ValueError as error:
                detail = str(error) if "out of range" in str(error) else "give a date"
                errors.append(f"Ignored {name}={text!r}: {detail}, e.g. 2026-03-31.")
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
        glance = read_glance(engine, query)
        with engine.connect() as conn:
            choices = _choices(conn)
            lead = _read_lead(conn, lead_id) if lead_id else None
            trends = read_trends(conn, query)
    except DBAPIError as error:
        raise StoreError(f"Cannot read the store ({first_line(error)[:200]}).") from error
    return DashboardData(report, choices, lead_id, lead, errors, glance, trends)


def _choices(conn: Connection) -> dict[str, list[str]]:
    out = {}
    for name, col in (("sources", LIFECYCLE.c.source), ("campaigns", LIFECYCLE.c.campaign_id)):
        query = select(col).distinct().where(col.is_not(None)).order_by(col).limit(CHOICES_LIMIT)
        out[name] = [str(v) for v in conn.execute(query).scalars()]
        out[name].append(UNKNOWN)
    return out


def _read_lead(conn: Connection, lead_id: str) -> LeadView | None:
    row = conn.execute(select(LIFECYCLE).where(LIFECYCLE.c.lead_id == lead_id)).mappings().first()
    if row is None:
        return None
    t = TRANSITIONS.c
    transitions = [
        dict(r) for r in conn.execute(select(TRANSITIONS).where(t.lead_id == lead_id)).mappings()
    ]
    transitions.sort(key=lambda r: (r["cycle_no"], r["entered_at"], _stage_order(r["stage"])))
    s = SLA.c
    sla_query = select(SLA).where(s.lead_id == lead_id).order_by(s.cycle_no)
    sla = [dict(r) for r in conn.execute(sla_query).mappings()]
    attribution: list[dict[str, Any]] = []
    if inspect(conn).has_table("attribution"):
        a = ATTRIBUTION.c
        rows = conn.execute(select(a.campaign_id, a.model, a.credit).where(a.lead_id == lead_id))
        order = {m: i for i, m in enumerate(ATTRIBUTION_MODELS)}
        attribution = sorted(
            ({"campaign_id": c, "model": m, "credit": Decimal(str(v))} for c, m, v in rows),
            key=lambda r: (order.get(r["model"], len(order)), r["campaign_id"]),
        )
    return LeadView(dict(row), transitions, sla, attribution)


def _stage_order(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def _lead_model(lead: LeadView) -> dict[str, Any]:
    life = lead.lifecycle
    sla_by_cycle = {row["cycle_no"]: row for row in lead.sla}
    cycles: dict[int, list[dict[str, Any]]] = {}
    for t in lead.transitions:
        cycles.setdefault(int(t["cycle_no"]), []).append(
            {
                "stage": t["stage"],
                "entered_at": fmt_time(t["entered_at"]),
                "inferred": t["inferred"],
            }
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
        "amount": f"{fmt_money(Decimal(str(amount)))} {life.get('currency') or ''}".strip()
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
        "attribution": [{**row, "credit": fmt_credit(row["credit"])} for row in lead.attribution],
    }


def _sla_model(row: Mapping[str, Any] | None) -> dict[str, str] | None:
    if row is None:
        return None
    response = "none yet"
    if row.get("responded_at") is not None:
        response = (
            f"{row.get('response_type')} at {fmt_time(row['responded_at'])}"
            f" ({fmt_duration(row.get('response_seconds'))})"
        )
    return {
        "status": str(row["status"]),
        "mql_at": fmt_time(row["mql_at"]),
        "deadline": fmt_time(row["deadline"]),
        "response": response,
    }


def render_dashboard(data: DashboardData, *, base: str = BASE, now: datetime | None = None) -> str:
    """The dashboard page of ``data`` (assets linked under ``base``/static)."""
    model = page_model(data.report)
    trends = None
    if data.trends is not None:
        trends, model["charts"]["weekly"] = trends_model(data.trends)
    return (
        jinja_environment()
        .get_template("dashboard.html")
        .render(
            title="leadflow funnel dashboard",
            generated_at=fmt_time(now or datetime.now(UTC)),
            inline=None,
            base=base,
            filters=data.report.query.filters(),
            form=form_fields(data.report.query),
            choices=data.choices,
            dimensions=DIMENSIONS,
            errors=data.errors,
            page=model["page"],
            chart_json=chart_json(model["charts"]),
            lead_query=data.lead_query,
            lead=_lead_model(data.lead) if data.lead else None,
            glance=glance_model(data.glance) if data.glance else None,
            trends=trends,
        )
    )


def render_error(message: str, *, base: str = BASE) -> str:
    """A small page saying what went wrong and what to do."""
    return (
        jinja_environment()
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
    if data.errors:
        status = 400  # the page still shows, with the bad parameters named and ignored
    elif data.lead_query and data.lead is None:
        status = 404
    return status, render_dashboard(data)
