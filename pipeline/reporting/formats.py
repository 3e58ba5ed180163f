"""The report's text formats: a terminal table, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from leadflow.pipeline.reporting.model import (
    PERCENTILE_METHOD,
    Details,
    Funnel,
    Report,
    SlaLine,
    SpeedToLead,
)
from leadflow.pipeline.reporting.safe import csv_cell, term
from leadflow.schemas.vocabulary import SLA_STATUSES
from leadflow.sinks.fx import Converted
from leadflow.sinks.goals import COUNT_METRICS, GoalProgress

# -- output formats ----------------------------------------------------------------------------


def _funnel_dict(funnel: Funnel) -> dict[str, Any]:
    return {"stages": dict(funnel.stages), "conversion": dict(funnel.conversion)}


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data: Decimals as strings, ordered keys.

    Beyond the classic keys: ``filters`` (when any), ``funnel_by_<by>`` for ``--by campaign`` or
    ``owner``, ``sla_by_policy``, and with details ``speed_histogram``, ``sla_by_owner``,
    ``sla_owners`` (as ``sla_by_policy``, by owner), ``rejections_by_campaign`` and
    ``attribution`` (null when the store has none yet).
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
        data["sla_owners"] = {line.key: sla_line_dict(line) for line in details.sla_owners}
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
        "sla_by_policy": {line.key: sla_line_dict(line) for line in report.sla_by_policy},
        "revenue": {
            currency: {"won_deals": r.won_deals, "won_amount": str(r.won_amount)}
            for currency, r in report.revenue.items()
        },
        "revenue_converted": _converted_dict(report),
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


def _speed_dict(speed: SpeedToLead) -> dict[str, Any]:
    return {
        "count": speed.count,
        "p50_seconds": speed.p50_seconds,
        "p90_seconds": speed.p90_seconds,
    }


def sla_line_dict(line: SlaLine) -> dict[str, Any]:
    """Counts, rates over decided cycles, and speed to lead in business and wall seconds."""
    return {
        "met": line.met,
        "breached": line.breached,
        "pending": line.pending,
        "met_rate": line.met_rate,
        "breach_rate": line.breach_rate,
        "business": _speed_dict(line.business),
        "wall": _speed_dict(line.wall),
    }


def _converted_dict(report: Report) -> dict[str, Any] | None:
    """Won revenue in the reporting currency; null when the store has no rates."""
    c = report.converted
    if c is None:
        return None
    return {
        "currency": c.currency,
        "won_amount": str(c.total),
        "won_deals": c.deals,
        "without_rate": {k: str(v) for k, v in c.without_rate.items()},
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
    model:currency); ``attribution`` / ``none`` when the store has no attribution yet;
    ``sla_by_policy`` (policy, field) and with details ``sla_owners`` (owner, field), the fields
    of :func:`sla_line_dict` with the speeds flattened (``business_p50_seconds`` ...).
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
    yield from _sla_line_rows("sla_by_policy", report.sla_by_policy)
    for currency, revenue in report.revenue.items():
        yield "revenue", currency, "won_deals", str(revenue.won_deals)
        yield "revenue", currency, "won_amount", str(revenue.won_amount)
    if report.converted is not None:
        c = report.converted
        yield "revenue_converted", c.currency, "won_amount", str(c.total)
        yield "revenue_converted", c.currency, "won_deals", str(c.deals)
        for currency, amount in c.without_rate.items():
            yield "revenue_without_rate", currency, "won_amount", str(amount)
    totals = report.totals
    yield "totals", "leads", "", str(totals.leads)
    yield "totals", "orphans", "", str(totals.orphans)
    yield "totals", "dead_letters", "", _cell(totals.dead_letters)
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
    yield from _sla_line_rows("sla_owners", details.sla_owners)
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


def _sla_line_rows(section: str, lines: Iterable[SlaLine]) -> Iterable[tuple[str, str, str, str]]:
    for line in lines:
        for name, value in sla_line_dict(line).items():
            if isinstance(value, dict):
                for part, number in value.items():
                    yield section, line.key, f"{name}_{part}", _cell(number)
            else:
                yield section, line.key, name, _cell(value)


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
    writer.writerows(tuple(csv_cell(cell) for cell in row) for row in csv_rows(report))
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


def _short_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}h {rest // 60:02d}m"


TOP_N = 5  # rows of each breakdown the default table shows; --full shows every row
FULL_HINT = "Top {n} rows per breakdown; --full prints all (json, csv and html keep all)."
_SHORT = {"recycled": "recyc.", "disqualified": "disq."}


def _compact(title: str) -> Table:
    """A table with a left title, one rule under the header and no outer edge."""
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title_justify="left",
        min_width=len(title),
    )


def _grid(title: str, columns: Iterable[str], left: int = 1) -> Table:
    """A compact table: ``left`` first columns left-aligned, the others right-aligned."""
    grid = _compact(title)
    for i, name in enumerate(columns):
        grid.add_column(name, justify="left" if i < left else "right")
    return grid


def _funnel_table(funnel: Funnel) -> Table:
    grid = _grid("Funnel: distinct leads that ever entered each stage", ["", *funnel.stages])
    rates = {step.split("->")[1]: rate for step, rate in funnel.conversion.items()}
    grid.add_row("leads", *(f"{n:,}" for n in funnel.stages.values()))
    grid.add_row("conv.", *(percent(rates[s]) if s in rates else "" for s in funnel.stages))
    return grid


def _by_source_tables(
    report: Report, by: str, groups: Mapping[str, Funnel], limit: int | None
) -> Table:
    """Leads per stage and win rate by ``by``, largest first (the top ``limit`` when given)."""
    stages = list(report.funnel.stages)
    grid = _grid(
        f"Funnel by {by}" + _of(limit, len(groups)),
        [by, *(_SHORT.get(s, s) for s in stages), "lead->won"],
    )
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1].stages.get("lead", 0), kv[0]))
    for key, funnel in ranked[:limit]:
        won, leads = funnel.stages.get("won", 0), funnel.stages.get("lead", 0)
        grid.add_row(
            term(key),
            *(f"{funnel.stages.get(s, 0):,}" for s in stages),
            percent(won / leads if leads else None),
        )
    return grid


def _of(limit: int | None, total: int) -> str:
    return f" (top {limit} of {total})" if limit is not None and total > limit else ""


def _headline(report: Report) -> Table:
    stages, sla = report.funnel.stages, report.sla
    answered = sla.get("met", 0) + sla.get("breached", 0)
    lead, won = stages.get("lead", 0), stages.get("won", 0)
    grid = _grid("Headline", ["leads", "MQLs", "won", "lead->won", "SLA met", "p50 response"], 0)
    grid.add_row(
        f"{lead:,}",
        f"{stages.get('mql', 0):,}",
        f"{won:,}",
        percent(won / lead if lead else None),
        percent(sla.get("met", 0) / answered if answered else None),
        _short_duration(report.speed_to_lead.p50_seconds),
    )
    return grid


def _service_table(report: Report, limit: int | None) -> Table:
    """Handoff SLA and speed to lead (p50, business vs wall clock), one row per policy."""
    lines = sorted(report.sla_by_policy, key=lambda line: (-line.decided - line.pending, line.key))
    grid = _grid(
        f"Speed to lead ({PERCENTILE_METHOD}) and handoff SLA by policy" + _of(limit, len(lines)),
        ["policy", *SLA_STATUSES, "met %", "breach %", "p50 biz", "p50 wall", "p90 biz"],
    )
    for line in lines[:limit]:
        grid.add_row(
            term(line.key),
            *_sla_cells(line),
            _short_duration(line.business.p90_seconds),
        )
    return grid


def _sla_cells(line: SlaLine) -> tuple[str, ...]:
    """met, breached, pending, met rate, breach rate, p50 business, p50 wall."""
    return (
        f"{line.met:,}",
        f"{line.breached:,}",
        f"{line.pending:,}",
        percent(line.met_rate),
        percent(line.breach_rate),
        _short_duration(line.business.p50_seconds),
        _short_duration(line.wall.p50_seconds),
    )


def _revenue_table(report: Report) -> Table:
    grid = _grid("Won revenue", ["currency", "won deals", "won amount"])
    for currency, r in report.revenue.items():
        grid.add_row(term(currency), f"{r.won_deals:,}", f"{r.won_amount:,}")
    return grid


def _converted_line(c: Converted) -> Text:
    apart = ", ".join(f"{v:,} {k}" for k, v in c.without_rate.items())
    text = f"Won revenue in {c.currency}: {c.total:,} ({c.deals:,} deals)"
    return term(text + (f"; without a rate, not converted: {apart}" if apart else ""))


def _totals_line(report: Report) -> Text:
    totals = report.totals
    reasons = ", ".join(f"{term(k)} {n}" for k, n in totals.dead_letters_by_reason.items())
    text = f"Totals: {totals.leads:,} leads, {totals.orphans:,} orphans, "
    if totals.dead_letters is None:
        text += "dead letters not readable by this role"
    else:
        text += f"{totals.dead_letters:,} dead letters" + (f" ({reasons})" if reasons else "")
    return term(text)


def render_table(report: Report, console: Console, *, full: bool = False) -> None:
    """Print the report as rich tables: compact (top rows) by default, every row with ``full``.

    Every user string is a rich ``Text``, so no value is read as markup.
    """
    limit = None if full else TOP_N
    filters = report.query.filters()
    if filters:
        console.print(term("Filters: " + ", ".join(f"{k}={v}" for k, v in filters.items())))
    for table in _tables(report, limit):
        console.print(table, "")
    if not full:
        console.print(FULL_HINT.format(n=TOP_N))


def _tables(report: Report, limit: int | None) -> Iterable[Table | Text]:
    yield _headline(report)
    yield _funnel_table(report.funnel)
    by = report.query.by
    groups = report.funnel_by_source if by == "source" else report.breakdown
    if groups:
        yield _by_source_tables(report, by, groups, limit)
    yield _service_table(report, limit)
    yield _revenue_table(report)
    if report.converted is not None:
        yield _converted_line(report.converted)
    if report.goals:
        yield goals_table(report.goals)
    if report.details is not None:
        yield from _detail_tables(report.details, limit)
    yield _totals_line(report)


def _detail_tables(details: Details, limit: int | None) -> Iterable[Table | Text]:
    hist = _grid("Speed to lead by delay", list(details.speed_histogram), 0)
    hist.add_row(*(f"{n:,}" for n in details.speed_histogram.values()))
    yield hist
    yield _owners_table(details, limit)
    yield _rejections_table(details, limit)
    if details.attribution is None:
        yield Text("Attribution: no attribution yet (the store has no attribution table).")
    else:
        yield _attribution_table(details, limit)


def worst_first(lines: Iterable[SlaLine]) -> list[SlaLine]:
    """SLA lines by met rate, worst first (none decided last), then most cycles, then key."""
    return sorted(
        lines,
        key=lambda line: (
            2.0 if line.met_rate is None else line.met_rate,
            -line.decided - line.pending,
            line.key,
        ),
    )


def _owners_table(details: Details, limit: int | None) -> Table:
    rows = worst_first(details.sla_owners)
    title = "Handoff SLA by owner, worst met rate first" + _of(limit, len(rows))
    grid = _grid(title, ["owner", *SLA_STATUSES, "met %", "breach %", "p50 biz", "p50 wall"])
    for line in rows[:limit]:
        grid.add_row(term(line.key), *_sla_cells(line))
    return grid


def rejection_pivot(
    details: Details, limit: int | None
) -> tuple[list[str], list[str], dict[tuple[str, str], int]]:
    """Top campaigns (rows) and top reasons (columns) by rejected leads, and the counts."""
    by_campaign: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    cells: dict[tuple[str, str], int] = {}
    for campaign, counts in details.rejections_by_campaign.items():
        for reason, n in counts.items():
            by_campaign[campaign] = by_campaign.get(campaign, 0) + n
            by_reason[reason] = by_reason.get(reason, 0) + n
            cells[(campaign, reason)] = n
    campaigns = sorted(by_campaign, key=lambda k: (-by_campaign[k], k))[:limit]
    reasons = sorted(by_reason, key=lambda k: (-by_reason[k], k))[:limit]
    return campaigns, reasons, cells


def _rejections_table(details: Details, limit: int | None) -> Table:
    campaigns, reasons, cells = rejection_pivot(details, limit)
    total = len(details.rejections_by_campaign)
    grid = _compact("Rejection reasons by campaign (current cycle)" + _of(limit, total))
    grid.add_column("campaign")
    for reason in reasons:
        grid.add_column(term(reason), justify="right")
    for campaign in campaigns:
        grid.add_row(term(campaign), *(str(cells.get((campaign, r), 0)) for r in reasons))
    return grid


def _attribution_table(details: Details, limit: int | None) -> Table:
    lines = details.attribution or ()
    ranked = sorted(lines, key=lambda line: (-line.credit, line.campaign_id, line.model))
    title = "Attribution of won leads (credit = attributed won deals)" + _of(limit, len(lines))
    grid = _grid(title, ["campaign", "model", "credit", "leads", "attributed revenue"], 2)
    for line in ranked[:limit]:
        money = ", ".join(f"{v:,.0f} {term(c)}" for c, v in line.revenue.items())
        grid.add_row(
            term(line.campaign_id),
            term(line.model),
            f"{line.credit:.1f}",
            str(line.leads),
            term(money),
        )
    return grid


def goals_table(progress: Iterable[GoalProgress]) -> Table:
    """Shared goals: each one's actual against its target."""
    table = _compact("Shared goals")
    for name in ("period", "metric", "currency", "target", "actual", "progress"):
        table.add_column(
            name, justify="right" if name in ("target", "actual", "progress") else "left"
        )
    for p in progress:
        table.add_row(
            term(p.goal.period),
            term(p.goal.metric),
            term(p.goal.currency or "all"),
            goal_number(p.goal.metric, p.goal.target),
            goal_number(p.goal.metric, p.actual),
            percent(p.ratio),
        )
    return table


def goal_number(metric: str, value: Decimal) -> str:
    """A goal's target or actual: whole numbers for counts, two decimals for money."""
    if metric in COUNT_METRICS:
        return f"{value:,.0f}"
    return f"{value:,.2f}"
