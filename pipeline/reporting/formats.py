"""The report's text formats: a terminal table, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from leadflow.pipeline.reporting.model import PERCENTILE_METHOD, Details, Funnel, Report
from leadflow.schemas.vocabulary import SLA_STATUSES
from leadflow.sinks.goals import GoalProgress

# -- output formats ----------------------------------------------------------------------------


def _funnel_dict(funnel: Funnel) -> dict[str, Any]:
    return {"stages": dict(funnel.stages), "conversion": dict(funnel.conversion)}


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data: Decimals as strings, ordered keys.

    Beyond the classic keys: ``filters`` (when any), ``funnel_by_<by>`` for ``--by campaign`` or
    ``owner``, and with details ``speed_histogram``, ``sla_by_owner``,
    ``rejections_by_campaign`` and ``attribution`` (null when the store has none yet).
    """
    data = _classic_dict(report)
    filters = report.query.filters()
    if filters:
        data = {"filters": filters, **data}
    if report.query.by != "source":
        data[f"funnel_by_{report.query.by}"] = {
            key: _funnel_dict(f) for key, f in report.breakdown.items()
        }
    details = report.details
    if details is not None:
        data["speed_histogram"] = dict(details.speed_histogram)
        data["sla_by_owner"] = {k: dict(v) for k, v in details.sla_by_owner.items()}
        data["rejections_by_campaign"] = {
            k: dict(v) for k, v in details.rejections_by_campaign.items()
        }
        data["attribution"] = (
            None
            if details.attribution is None
            else [
                {
                    "campaign_id": line.campaign_id,
                    "model": line.model,
                    "credit": str(line.credit),
                    "leads": line.leads,
                    "revenue": {c: str(v) for c, v in line.revenue.items()},
                }
                for line in details.attribution
            ]
        )
    return data


def _classic_dict(report: Report) -> dict[str, Any]:
    speed = report.speed_to_lead
    totals = report.totals
    return {
        "funnel": _funnel_dict(report.funnel),
        "funnel_by_source": {s: _funnel_dict(f) for s, f in report.funnel_by_source.items()},
        "speed_to_lead": {
            "count": speed.count,
            "p50_seconds": speed.p50_seconds,
            "p90_seconds": speed.p90_seconds,
            "percentile_method": PERCENTILE_METHOD,
        },
        "sla": dict(report.sla),
        "revenue": {
            currency: {"won_deals": r.won_deals, "won_amount": str(r.won_amount)}
            for currency, r in report.revenue.items()
        },
        "totals": {
            "leads": totals.leads,
            "orphans": totals.orphans,
            "dead_letters": totals.dead_letters,
            "dead_letters_by_reason": dict(totals.dead_letters_by_reason),
        },
        "goals": [
            {
                "period": p.goal.period,
                "metric": p.goal.metric,
                "currency": p.goal.currency,
                "target": str(p.goal.target),
                "actual": str(p.actual),
                "ratio": p.ratio,
            }
            for p in report.goals
        ],
    }


def to_json(report: Report) -> str:
    """The report as indented JSON with stable key order; amounts as decimal strings."""
    return json.dumps(to_dict(report), indent=2) + "\n"


CSV_HEADER = ("section", "key", "subkey", "value")


def csv_rows(report: Report) -> Iterable[tuple[str, str, str, str]]:
    """Rows (section, key, subkey, value); None is the empty string, floats use repr.

    Sections beyond the classic ones: ``filters``; ``funnel_by_<by>`` and ``conversion_by_<by>``;
    with details ``speed_histogram`` (bucket), ``sla_by_owner`` (owner, status),
    ``rejections`` (campaign, reason), ``attribution`` (campaign, model: credit),
    ``attribution_leads`` (campaign, model) and ``attribution_revenue`` (campaign,
    model:currency); ``attribution`` / ``none`` when the store has no attribution yet.
    """
    yield from (("filters", key, "", value) for key, value in report.query.filters().items())
    yield from _funnel_rows(report.funnel, None)
    for source, funnel in report.funnel_by_source.items():
        yield from _funnel_rows(funnel, source)
    if report.query.by != "source":
        for key, funnel in report.breakdown.items():
            yield from _funnel_rows(funnel, key, report.query.by)
    speed = report.speed_to_lead
    yield "speed_to_lead", "count", "", str(speed.count)
    yield "speed_to_lead", "p50_seconds", "", _cell(speed.p50_seconds)
    yield "speed_to_lead", "p90_seconds", "", _cell(speed.p90_seconds)
    yield from (("sla", status, "", str(n)) for status, n in report.sla.items())
    for currency, revenue in report.revenue.items():
        yield "revenue", currency, "won_deals", str(revenue.won_deals)
        yield "revenue", currency, "won_amount", str(revenue.won_amount)
    totals = report.totals
    yield "totals", "leads", "", str(totals.leads)
    yield "totals", "orphans", "", str(totals.orphans)
    yield "totals", "dead_letters", "", str(totals.dead_letters)
    for reason, n in totals.dead_letters_by_reason.items():
        yield "dead_letters", reason, "", str(n)
    for p in report.goals:
        key = f"{p.goal.period}:{p.goal.metric}:{p.goal.currency}"
        yield "goals", key, "target", str(p.goal.target)
        yield "goals", key, "actual", str(p.actual)
        yield "goals", key, "ratio", _cell(p.ratio)
    if report.details is not None:
        yield from _detail_rows(report.details)


def _detail_rows(details: Details) -> Iterable[tuple[str, str, str, str]]:
    yield from (("speed_histogram", k, "", str(n)) for k, n in details.speed_histogram.items())
    for owner, statuses in details.sla_by_owner.items():
        yield from (("sla_by_owner", owner, status, str(n)) for status, n in statuses.items())
    for campaign, reasons in details.rejections_by_campaign.items():
        yield from (("rejections", campaign, reason, str(n)) for reason, n in reasons.items())
    if details.attribution is None:
        yield "attribution", "none", "", ""
        return
    for line in details.attribution:
        yield "attribution", line.campaign_id, line.model, str(line.credit)
        yield "attribution_leads", line.campaign_id, line.model, str(line.leads)
        for currency, amount in line.revenue.items():
            yield "attribution_revenue", line.campaign_id, f"{line.model}:{currency}", str(amount)


def _funnel_rows(
    funnel: Funnel, source: str | None, by: str = "source"
) -> Iterable[tuple[str, str, str, str]]:
    """Overall: key=stage or step; by source: key=source, subkey=stage or step."""
    suffix = "" if source is None else f"_by_{by}"
    for section, values in (("funnel", funnel.stages), ("conversion", funnel.conversion)):
        for name, value in values.items():
            key, subkey = (name, "") if source is None else (source, name)
            yield section + suffix, key, subkey, _cell(value)


def _cell(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def to_csv(report: Report) -> str:
    """The report as one CSV with a header and a ``section`` column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(report))
    return buffer.getvalue()


def percent(rate: float | None) -> str:
    """A ratio as a percentage with one decimal; '-' when there is none."""
    return "-" if rate is None else f"{rate:.1%}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}h {rest // 60:02d}m {rest % 60:02d}s ({seconds:g} s)"


def _funnel_table(funnel: Funnel) -> Table:
    grid = Table(title="Funnel: distinct leads that ever entered each stage")
    for name in ("stage", "leads", "conversion from previous"):
        grid.add_column(name, justify="left" if name == "stage" else "right")
    rates = {step.split("->")[1]: rate for step, rate in funnel.conversion.items()}
    for stage, n in funnel.stages.items():
        grid.add_row(stage, str(n), percent(rates[stage]) if stage in rates else "")
    return grid


def _by_source_tables(
    report: Report, by: str = "source", groups: Mapping[str, Funnel] | None = None
) -> tuple[Table, Table]:
    stages = Table(title=f"Leads per stage by {by}")
    rates = Table(title=f"Conversion by {by}")
    for grid, names in ((stages, report.funnel.stages), (rates, report.funnel.conversion)):
        grid.add_column(by)
        for name in names:
            grid.add_column(_SHORT.get(name, name), justify="right")
    chosen = report.funnel_by_source if groups is None else groups
    for source, funnel in chosen.items():
        stages.add_row(source, *(str(funnel.stages.get(s, 0)) for s in report.funnel.stages))
        rates.add_row(source, *(percent(r) for r in funnel.conversion.values()))
    return stages, rates


_SHORT = {"recycled": "recyc.", "disqualified": "disq."}


def _key_value_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    grid = Table(title=title, min_width=len(title) + 2)
    grid.add_column("")
    grid.add_column("value", justify="right")
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def render_table(report: Report, console: Console) -> None:
    """Print the report as rich tables."""
    speed, totals = report.speed_to_lead, report.totals
    filters = report.query.filters()
    if filters:
        console.print("Filters: " + ", ".join(f"{k}={v}" for k, v in filters.items()))
    console.print(_funnel_table(report.funnel))
    if report.query.by != "source":
        console.print(*_by_source_tables(report, report.query.by, report.breakdown))
    elif report.funnel_by_source:
        console.print(*_by_source_tables(report))
    console.print(
        _key_value_table(
            f"Speed to lead ({PERCENTILE_METHOD})",
            [
                ("responses", str(speed.count)),
                ("p50", _duration(speed.p50_seconds)),
                ("p90", _duration(speed.p90_seconds)),
            ],
        )
    )
    console.print(_key_value_table("Handoff SLA", [(k, str(n)) for k, n in report.sla.items()]))
    revenue = Table(title="Won revenue")
    for name in ("currency", "won deals", "won amount"):
        revenue.add_column(name, justify="left" if name == "currency" else "right")
    for currency, r in report.revenue.items():
        revenue.add_row(currency, str(r.won_deals), f"{r.won_amount:,}")
    console.print(revenue)
    rows = [("leads", str(totals.leads)), ("orphans", str(totals.orphans))]
    rows.append(("dead letters", str(totals.dead_letters)))
    rows += [(f"  {reason}", str(n)) for reason, n in totals.dead_letters_by_reason.items()]
    console.print(_key_value_table("Totals", rows))
    if report.goals:
        console.print(goals_table(report.goals))
    if report.details is not None:
        _render_details(report.details, console)


def _render_details(details: Details, console: Console) -> None:
    console.print(
        _key_value_table(
            "Speed to lead by delay",
            [(k, str(n)) for k, n in details.speed_histogram.items()],
        )
    )
    owners = Table(title="Handoff SLA by owner", min_width=24)
    owners.add_column("owner")
    for status in SLA_STATUSES:
        owners.add_column(status, justify="right")
    for owner, statuses in details.sla_by_owner.items():
        owners.add_row(owner, *(str(statuses.get(s, 0)) for s in SLA_STATUSES))
    console.print(owners)
    rejections = Table(title="Rejection reasons by campaign (current cycle)", min_width=48)
    for name in ("campaign", "reason", "leads"):
        rejections.add_column(name, justify="right" if name == "leads" else "left")
    for campaign, reasons in details.rejections_by_campaign.items():
        for reason, n in reasons.items():
            rejections.add_row(campaign, reason, str(n))
    console.print(rejections)
    if details.attribution is None:
        console.print("Attribution: no attribution yet (the store has no attribution table).")
        return
    grid = Table(title="Attribution of won leads (credit = attributed won deals)", min_width=60)
    for name in ("campaign", "model", "credit", "leads", "attributed revenue"):
        grid.add_column(name, justify="left" if name in ("campaign", "model") else "right")
    for line in details.attribution:
        money = ", ".join(f"{v:,} {c}" for c, v in line.revenue.items())
        grid.add_row(
            line.campaign_id, line.model, f"{line.credit.normalize():f}", str(line.leads), money
        )
    console.print(grid)


def goals_table(progress: Iterable[GoalProgress]) -> Table:
    """Shared goals: each one's actual against its target."""
    table = Table(title="Shared goals")
    for name in ("period", "metric", "currency", "target", "actual", "progress"):
        table.add_column(
            name, justify="right" if name in ("target", "actual", "progress") else "left"
        )
    for p in progress:
        table.add_row(
            p.goal.period,
            p.goal.metric,
            p.goal.currency or "all",
            f"{p.goal.target:,}",
            f"{p.actual:,}",
            percent(p.ratio),
        )
    return table
