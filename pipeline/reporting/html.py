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

from leadflow.pipeline.reporting.formats import (
    goal_number,
    percent,
    rejection_pivot,
    worst_first,
)
from leadflow.pipeline.reporting.model import DIMENSIONS, Details, Report, ReportQuery, SlaLine
from leadflow.schemas.vocabulary import ATTRIBUTION_MODELS, FUNNEL_PATH
from leadflow.sinks.goals import GoalProgress

WEB_DIR = Path(__file__).parent
BASE = "/dashboard"  # where the dashboard serves this page; the filter form posts here


STATIC_DIR = WEB_DIR / "static"
DRILL_TOP = 10  # drill-down rows shown before "show all"
PIVOT_TOP = 8  # campaigns and reasons in the rejection pivot


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
    text = f"{value:.2f}".rstrip("0").rstrip(".")  # credit for people: two decimals at most
    return text or "0"


def fmt_time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def page_model(report: Report) -> dict[str, Any]:
    """The report as display rows (strings), and the chart data, for the template."""
    page = _headline_rows(report)
    charts = _headline_charts(report, page)
    if report.details is not None:
        _add_details(report.details, page, charts)
    return {"page": page, "charts": charts}


def _headline_rows(report: Report) -> dict[str, Any]:
    """What every page shows: KPIs, the funnel and its breakdown, SLA, revenue, goals."""
    funnel = report.funnel
    rates = {step.split("->")[1]: rate for step, rate in funnel.conversion.items()}
    by = report.query.by
    groups = report.funnel_by_source if by == "source" else report.breakdown
    return {
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
        "sla_by_policy": [sla_line_row(line) for line in report.sla_by_policy],
        "revenue": [
            {"currency": c, "deals": r.won_deals, "amount": fmt_money(r.won_amount)}
            for c, r in report.revenue.items()
        ],
        "goals": [_goal_row(p) for p in report.goals],
        "speed_histogram": [],
        "sla_by_owner": [],
        "rejections": None,
        "attribution": None,
        "models": list(ATTRIBUTION_MODELS),
    }


def _goal_row(progress: GoalProgress) -> dict[str, Any]:
    goal = progress.goal
    return {
        "period": goal.period,
        "label": f"{goal.metric} {goal.currency}".strip(),
        "key": f"{goal.period}.{goal.metric}.{goal.currency or 'all'}",
        "actual": goal_number(goal.metric, progress.actual),
        "target": goal_number(goal.metric, goal.target),
        "meter": min(1.0, progress.ratio or 0.0),
        "progress": percent(progress.ratio),
    }


def _headline_charts(report: Report, page: dict[str, Any]) -> dict[str, Any]:
    stages = report.funnel.stages
    return {
        "funnel": {
            "labels": list(FUNNEL_PATH),
            "datasets": [{"label": "leads", "data": [stages.get(s, 0) for s in FUNNEL_PATH]}],
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


def _add_details(details: Details, page: dict[str, Any], charts: dict[str, Any]) -> None:
    """The drill-downs: speed histogram, SLA by owner, rejections, attribution."""
    page["speed_histogram"] = list(details.speed_histogram.items())
    charts["speed"] = {
        "labels": list(details.speed_histogram),
        "datasets": [{"label": "responses", "data": list(details.speed_histogram.values())}],
    }
    owners = worst_first(details.sla_owners)
    page["sla_by_owner"] = [{"owner": line.key, **sla_line_row(line)} for line in owners]
    charts["sla"] = _sla_chart(owners[:DRILL_TOP])
    page["rejections"] = _rejection_rows(details)
    if details.attribution is not None:
        page["attribution"], charts["attribution"] = _attribution_view(details.attribution)


def _sla_chart(worst: list[SlaLine]) -> dict[str, Any]:
    return {
        "labels": [line.key for line in worst],
        "horizontal": True,
        "percent": True,
        "datasets": [
            {
                "label": "SLA met rate %",
                "color": "#dc2626",
                "data": [
                    None if line.met_rate is None else round(line.met_rate * 100, 1)
                    for line in worst
                ],
            }
        ],
    }


def _rejection_rows(details: Details) -> dict[str, Any]:
    campaigns, reasons, cells = rejection_pivot(details, PIVOT_TOP)
    return {
        "reasons": reasons,
        "rows": [
            {"campaign": c, "counts": [cells.get((c, r), 0) for r in reasons]} for c in campaigns
        ],
        "all": [
            {"campaign": campaign, "reason": reason, "leads": n}
            for campaign, counts in details.rejections_by_campaign.items()
            for reason, n in counts.items()
        ],
        "campaigns_total": len(details.rejections_by_campaign),
        "reasons_total": len({r for rs in details.rejections_by_campaign.values() for r in rs}),
    }


def sla_line_row(line: SlaLine) -> dict[str, Any]:
    """One policy's or owner's SLA as display strings: counts, rates, both clocks' p50 and p90."""
    return {
        "key": line.key,
        "met": line.met,
        "breached": line.breached,
        "pending": line.pending,
        "rate": percent(line.met_rate),
        "breach_rate": percent(line.breach_rate),
        "business_p50": fmt_duration(line.business.p50_seconds),
        "business_p90": fmt_duration(line.business.p90_seconds),
        "wall_p50": fmt_duration(line.wall.p50_seconds),
        "wall_p90": fmt_duration(line.wall.p90_seconds),
    }


def _attribution_view(lines: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    credit = {(line.campaign_id, line.model): line.credit for line in lines}
    total: dict[str, Decimal] = {}
    for line in lines:
        total[line.campaign_id] = total.get(line.campaign_id, Decimal(0)) + line.credit
    campaigns = sorted(total, key=lambda c: (-total[c], c))  # most credited first
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
            "revenue": ", ".join(f"{v:,.0f} {cur}" for cur, v in revenue.get(c, {}).items()) or "-",
        }
        for c in campaigns
    ]
    top = campaigns[:DRILL_TOP]
    chart = {
        "labels": top,
        "datasets": [
            {"label": m, "data": [round(float(credit.get((c, m), 0)), 2) for c in top]}
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


def render_report_html(
    report: Report,
    *,
    now: datetime | None = None,
    glance: Any = None,
    trends: Any = None,
) -> str:
    """A self-contained HTML report (styles, chart library and data inline), to send by mail:
    the dashboard's page, with its one-glance strip and trends when they are given."""
    model = page_model(report)
    trend_rows = None
    if trends is not None:
        trend_rows, model["charts"]["weekly"] = trends_model(trends)
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
            glance=None if glance is None else glance_model(glance),
            trends=trend_rows,
        )
    )


# -- the one-glance strip and the trends (dashboard only: they need the store) ----------------


def _met_rate(report: Report) -> float | None:
    met, breached = report.sla.get("met", 0), report.sla.get("breached", 0)
    return met / (met + breached) if met + breached else None


def _win_rate(report: Report) -> float | None:
    lead = report.funnel.stages.get("lead", 0)
    return report.funnel.stages.get("won", 0) / lead if lead else None


def _change(now: float | None, before: float | None, *, points: bool = False) -> str:
    """The change against the previous period: relative, or in percentage points for rates."""
    if now is None or before is None:
        return "no previous figure"
    if points:
        return f"{(now - before) * 100:+.1f} pp vs previous"
    if before == 0:
        return "new vs previous" if now else "0 vs previous"
    return f"{(now - before) / before:+.1%} vs previous"


def _trend_class(text: str) -> str:
    return (
        "up"
        if text.startswith("+") and not text.startswith("+0.0")
        else ("down" if text.startswith("-") else "flat")
    )


def _count_card(key: str, label: str, now: int, before: int) -> dict[str, str]:
    change = _change(now, before)
    return {"key": key, "label": label, "value": f"{now:,}", "change": change,
            "trend": _trend_class(change)}  # fmt: skip


def _rate_card(key: str, label: str, now: float | None, before: float | None) -> dict[str, str]:
    change = _change(now, before, points=True)
    return {"key": key, "label": label, "value": percent(now), "change": change,
            "trend": _trend_class(change)}  # fmt: skip


def _revenue_cards(now: Report, before: Report) -> list[dict[str, str]]:
    """Won revenue in the reporting currency when the store has rates, else per currency."""
    if now.converted is not None:
        c = now.converted
        prior = before.converted.total if before.converted is not None else Decimal(0)
        change = _change(float(c.total), float(prior))
        apart = ", ".join(f"{v:,.0f} {k}" for k, v in c.without_rate.items())
        label = f"won revenue in {c.currency}" + (f" (not converted: {apart})" if apart else "")
        return [{"key": f"revenue.{c.currency}", "label": label, "value": f"{c.total:,.0f}",
                 "change": change, "trend": _trend_class(change)}]  # fmt: skip
    cards = []
    for currency, revenue in now.revenue.items():
        prior = before.revenue[currency].won_amount if currency in before.revenue else Decimal(0)
        change = _change(float(revenue.won_amount), float(prior))
        cards.append({"key": f"revenue.{currency}", "label": f"won revenue {currency}",
                      "value": f"{revenue.won_amount:,.0f}", "change": change,
                      "trend": _trend_class(change)})  # fmt: skip
    return cards


def glance_model(glance: Any) -> dict[str, Any]:
    """Cards answering "are we on track": each figure with its change against the period before."""
    now, before = glance.current, glance.previous
    cards = [
        _count_card(key, label, now.funnel.stages.get(stage, 0), before.funnel.stages.get(stage, 0))
        for key, label, stage in (("leads", "leads entered", "lead"), ("mql", "MQLs", "mql"),
                                  ("won", "won deals", "won"))
    ]  # fmt: skip
    cards.append(_rate_card("win_rate", "lead to won", _win_rate(now), _win_rate(before)))
    cards.append(_rate_card("sla_met", "SLA met rate", _met_rate(now), _met_rate(before)))
    cards += _revenue_cards(now, before)
    steps = [None, *FUNNEL_PATH]
    funnel = [
        {
            "stage": stage,
            "leads": now.funnel.stages.get(stage, 0),
            "conversion": percent(now.funnel.conversion.get(f"{prev}->{stage}")) if prev else "",
        }
        for prev, stage in zip(steps, FUNNEL_PATH, strict=False)
    ]
    return {"since": glance.since.isoformat(), "until": glance.until.isoformat(),
            "cards": cards, "funnel": funnel}  # fmt: skip


def trends_model(trends: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The trends as display rows, and the weekly chart."""
    weeks = list(trends.weekly)
    rows = {
        "monthly": [
            {"month": m, "counts": [counts.get(s, 0) for s in FUNNEL_PATH]}
            for m, counts in trends.monthly.items()
        ],
        "cohorts": [
            {
                "week": week,
                "mql": c.get("mql", 0),
                "rates": [
                    percent(c.get(s, 0) / c["mql"] if c.get("mql") else None)
                    for s in ("sal", "sql", "won")
                ],
            }
            for week, c in list(trends.cohorts.items())[-12:]
        ],
        "velocity": [
            {"step": step, "days": "-" if days is None else f"{days:.1f}"}
            for step, days in trends.velocity.items()
        ],
        "stages": list(FUNNEL_PATH),
    }
    chart = {
        "type": "line",
        "labels": weeks,
        "datasets": [
            {"label": s, "data": [trends.weekly[w].get(s, 0) for w in weeks]} for s in FUNNEL_PATH
        ],
    }
    return rows, chart
