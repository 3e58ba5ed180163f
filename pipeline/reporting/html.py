"""The report as an HTML page: the display model, the template, charts inline."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from leadflow.pipeline.reporting.formats import percent
from leadflow.pipeline.reporting.model import DIMENSIONS, Report, ReportQuery
from leadflow.schemas.vocabulary import ATTRIBUTION_MODELS, FUNNEL_PATH, SLA_STATUSES

WEB_DIR = Path(__file__).parent
BASE = "/dashboard"  # where the dashboard serves this page; the filter form posts here


STATIC_DIR = WEB_DIR / "static"


@cache
def jinja_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(WEB_DIR / "templates")),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {rest % 60:02d}s"


def fmt_money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def fmt_credit(value: Decimal) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def fmt_time(moment: datetime | None) -> str:
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
            "p50": fmt_duration(report.speed_to_lead.p50_seconds),
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
            "p50": fmt_duration(report.speed_to_lead.p50_seconds),
            "p90": fmt_duration(report.speed_to_lead.p90_seconds),
        },
        "sla": dict(report.sla),
        "revenue": [
            {"currency": c, "deals": r.won_deals, "amount": fmt_money(r.won_amount)}
            for c, r in report.revenue.items()
        ],
        "goals": [
            {
                "period": p.goal.period,
                "label": f"{p.goal.metric} {p.goal.currency}".strip(),
                "key": f"{p.goal.period}.{p.goal.metric}.{p.goal.currency or 'all'}",
                "actual": fmt_money(p.actual),
                "target": fmt_money(p.goal.target),
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
            "labels": list(FUNNEL_PATH),
            "datasets": [
                {"label": "leads", "data": [funnel.stages.get(s, 0) for s in FUNNEL_PATH]}
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
            "credits": [
                (m, fmt_credit(credit.get((c, m), Decimal(0)))) for m in ATTRIBUTION_MODELS
            ],
            "leads": leads.get(c, 0),
            "revenue": ", ".join(f"{fmt_money(v)} {cur}" for cur, v in revenue.get(c, {}).items())
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


def chart_json(charts: Mapping[str, Any]) -> Markup:
    text = json.dumps(charts, separators=(",", ":"))
    # Safe inside <script type="application/json">: no markup character survives.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def form_fields(query: ReportQuery) -> dict[str, str]:
    return {
        "since": query.since.isoformat() if query.since else "",
        "until": query.until.isoformat() if query.until else "",
        "source": query.source or "",
        "campaign": query.campaign or "",
        "by": query.by,
    }


def _inline_script(name: str) -> Markup:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    return Markup(text.replace("</", "<\\/"))


def render_report_html(report: Report, *, now: datetime | None = None) -> str:
    """A self-contained HTML report (styles, chart library and data inline), to send by mail."""
    model = page_model(report)
    css = (STATIC_DIR / "dashboard.css").read_text(encoding="utf-8").replace("</", "<\\/")
    return (
        jinja_environment()
        .get_template("dashboard.html")
        .render(
            title="leadflow funnel report",
            generated_at=fmt_time(now or datetime.now(UTC)),
            inline={
                "css": Markup(css),
                "chart_js": _inline_script("chart.umd.min.js"),
                "dashboard_js": _inline_script("dashboard.js"),
            },
            base=BASE,
            filters=report.query.filters(),
            form=form_fields(report.query),
            choices={"sources": [], "campaigns": []},
            dimensions=DIMENSIONS,
            errors=[],
            page=model["page"],
            chart_json=chart_json(model["charts"]),
            lead_query="",
            lead=None,
        )
    )
