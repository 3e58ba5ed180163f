"""`leadflow report` formats and filters: table, JSON, CSV and HTML agree, and filters are exact."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from leadflow.pipeline.reporting import run_report
from leadflow.pipeline.reporting.model import ReportQuery
from leadflow.pipeline.reporting.queries import build_report
from leadflow.sinks import make_engine
from tests.support.stores import (
    expected_stages,
    fill_store,
)

# -- an independent reading of the store --------------------------------------------------------


def nonzero(stages: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in stages.items() if v}


# -- parsing the three text formats into one shape -----------------------------------------------


def numbers_from_json(payload: str) -> dict[str, Any]:
    data = json.loads(payload)
    return {
        "funnel": data["funnel"]["stages"],
        "by_campaign": {k: v["stages"] for k, v in data["funnel_by_campaign"].items()},
        "sla": data["sla"],
        "revenue": {
            c: (r["won_deals"], Decimal(r["won_amount"])) for c, r in data["revenue"].items()
        },
        "speed_histogram": data["speed_histogram"],
        "sla_by_owner": data["sla_by_owner"],
        "rejections": data["rejections_by_campaign"],
        "attribution": {
            (a["campaign_id"], a["model"]): Decimal(a["credit"]) for a in data["attribution"]
        },
        "filters": data.get("filters", {}),
    }


def numbers_from_csv(payload: str) -> dict[str, Any]:
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in csv.DictReader(io.StringIO(payload)):
        rows[row["section"]].append(row)
    nested: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for section in ("funnel_by_campaign", "sla_by_owner", "rejections"):
        for row in rows[section]:
            nested[section][row["key"]][row["subkey"]] = int(row["value"])
    revenue: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows["revenue"]:
        revenue[row["key"]][row["subkey"]] = row["value"]
    return {
        "funnel": {r["key"]: int(r["value"]) for r in rows["funnel"]},
        "by_campaign": {k: dict(v) for k, v in nested["funnel_by_campaign"].items()},
        "sla": {r["key"]: int(r["value"]) for r in rows["sla"]},
        "revenue": {c: (int(r["won_deals"]), Decimal(r["won_amount"])) for c, r in revenue.items()},
        "speed_histogram": {r["key"]: int(r["value"]) for r in rows["speed_histogram"]},
        "sla_by_owner": {k: dict(v) for k, v in nested["sla_by_owner"].items()},
        "rejections": {k: dict(v) for k, v in nested["rejections"].items()},
        "attribution": {(r["key"], r["subkey"]): Decimal(r["value"]) for r in rows["attribution"]},
        "filters": {r["key"]: r["value"] for r in rows["filters"]},
    }


def table_rows(text: str, title: str) -> list[dict[str, str]]:
    """The body rows of the compact rich table titled ``title``, as header -> cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    header = re.split(r"\s{2,}", lines[start + 1].strip())
    rows = []
    for line in lines[start + 3 :]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        names = header if len(header) == len(cells) else ["", *header]
        rows.append(dict(zip(names, cells, strict=False)))  # the conv. row has blanks
    return rows


def _int(cell: str) -> int:
    return int(cell.replace(",", ""))


STAGE_COLUMNS = {"recyc.": "recycled", "disq.": "disqualified"}


def numbers_from_table(text: str) -> dict[str, Any]:
    (funnel_row,) = [
        r
        for r in table_rows(text, "Funnel: distinct leads that ever entered each stage")
        if r[""] == "leads"
    ]
    by_campaign = {
        r["campaign"]: {
            STAGE_COLUMNS.get(k, k): _int(v)
            for k, v in r.items()
            if k not in ("campaign", "lead->won")
        }
        for r in table_rows(text, "Funnel by campaign")
    }
    owners = {
        r["owner"]: {s: _int(r[s]) for s in ("met", "breached", "pending")}
        for r in table_rows(text, "Handoff SLA by owner, worst met rate first")
    }
    rejections: dict[str, dict[str, int]] = defaultdict(dict)
    for r in table_rows(text, "Rejection reasons by campaign (current cycle)"):
        for reason, n in r.items():
            if reason != "campaign" and _int(n):
                rejections[r["campaign"]][reason] = _int(n)
    # One row per policy: the overall counts are their sums.
    service = table_rows(text, "Speed to lead (nearest-rank) and handoff SLA by policy")
    (histogram,) = table_rows(text, "Speed to lead by delay")
    return {
        "funnel": {k: _int(v) for k, v in funnel_row.items() if k},
        "by_campaign": by_campaign,
        "sla": {s: sum(_int(r[s]) for r in service) for s in ("met", "breached", "pending")},
        "revenue": {
            r["currency"]: (_int(r["won deals"]), Decimal(r["won amount"].replace(",", "")))
            for r in table_rows(text, "Won revenue")
        },
        "speed_histogram": {k: _int(v) for k, v in histogram.items()},
        "sla_by_owner": owners,
        "rejections": dict(rejections),
        "attribution": {
            (r["campaign"], r["model"]): Decimal(r["credit"])
            for r in table_rows(text, "Attribution of won leads (credit = attributed won deals)")
        },
        "filters": dict(
            part.split("=", 1)
            for line in text.splitlines()
            if line.startswith("Filters: ")
            for part in line.removeprefix("Filters: ").split(", ")
        ),
    }


def rounded_credit(numbers: dict[str, Any]) -> dict[str, Any]:
    """The table shows attribution credit with one decimal."""
    credit = {key: value.quantize(Decimal("0.1")) for key, value in numbers["attribution"].items()}
    return {**numbers, "attribution": credit}


def render(url: str, fmt: str, query: ReportQuery) -> str:
    out = io.StringIO()
    if fmt == "table":
        from rich.console import Console

        from leadflow.pipeline.reporting.formats import render_table

        engine = make_engine(url)
        try:
            render_table(
                build_report(engine, query),
                Console(file=out, width=200, color_system=None),
                full=True,
            )
        finally:
            engine.dispose()
        return out.getvalue()
    assert run_report(url, fmt, out, query) == 0
    return out.getvalue()


# -- tests ------------------------------------------------------------------------------------

QUERIES = [
    ReportQuery(by="campaign", details=True),
    ReportQuery(since=date(2026, 3, 1), until=date(2026, 3, 31), by="campaign", details=True),
    ReportQuery(source="paid_search", by="campaign", details=True),
    ReportQuery(campaign="C-ebook", by="campaign", details=True),
]


@pytest.mark.parametrize("query", QUERIES, ids=["all", "march", "paid_search", "C-ebook"])
def test_table_json_and_csv_carry_the_same_numbers(migrated_url: str, query: ReportQuery) -> None:
    fill_store(migrated_url)
    from_json = numbers_from_json(render(migrated_url, "json", query))
    assert numbers_from_csv(render(migrated_url, "csv", query)) == from_json
    from_table = numbers_from_table(render(migrated_url, "table", query))
    assert from_table == rounded_credit(from_json)
    engine = make_engine(migrated_url)
    try:
        assert nonzero(from_json["funnel"]) == expected_stages(engine, query)
    finally:
        engine.dispose()


def test_filters_change_the_numbers(migrated_url: str) -> None:
    fill_store(migrated_url)
    engine = make_engine(migrated_url)
    try:
        everything = build_report(engine).funnel.stages
        march = build_report(engine, QUERIES[1]).funnel.stages
        paid = build_report(engine, QUERIES[2]).funnel.stages
    finally:
        engine.dispose()
    assert everything["lead"] == 11
    assert march != everything and paid != everything
    assert paid["lead"] == 2  # L-1 and one more paid_search lead


def test_attribution_in_the_report(migrated_url: str) -> None:
    fill_store(migrated_url)
    data = numbers_from_json(render(migrated_url, "json", QUERIES[0]))
    credits = data["attribution"]
    by_model: dict[str, Decimal] = defaultdict(Decimal)
    for (_, model), credit in credits.items():
        by_model[model] += credit
    # The only won lead with a campaign touch is L-1 (C-spring, C-webinar): 1 deal per model.
    assert dict(by_model) == dict.fromkeys(("first_touch", "last_touch", "linear", "w_shaped"), 1)
    assert credits[("C-spring", "w_shaped")] == Decimal("0.65")
    assert credits[("C-webinar", "w_shaped")] == Decimal("0.35")
    payload = json.loads(render(migrated_url, "json", QUERIES[0]))
    revenue = {(a["campaign_id"], a["model"]): a["revenue"] for a in payload["attribution"]}
    assert revenue[("C-spring", "w_shaped")] == {"EUR": "9750.00"}  # 0.65 x 15000.00


def test_without_an_attribution_table_it_says_so(migrated_url: str) -> None:
    fill_store(migrated_url, attribution=False)
    assert json.loads(render(migrated_url, "json", QUERIES[0]))["attribution"] is None
    assert "no attribution yet" in render(migrated_url, "table", QUERIES[0])
    assert "No attribution yet" in render(migrated_url, "html", QUERIES[0])


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith(("#", "data:")):
                self.external.append(f"{tag} {name}={value}")
        self.scripts += tag == "script"


def test_html_is_one_self_contained_file(tmp_path: Path, migrated_url: str) -> None:
    fill_store(migrated_url)
    out = tmp_path / "funnel.html"
    env = {**os.environ, "LEADFLOW_DATABASE_URL": migrated_url}
    done = subprocess.run(
        [sys.executable, "-m", "leadflow", "report", "--format", "html", "-o", str(out),
         "--by", "campaign"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    parser = _Links()
    parser.feed(page)
    assert parser.external == []  # nothing fetched: readable offline, from a mail attachment
    assert parser.scripts == 3  # chart data, chart library, drawing code
    assert "Chart.js v4" in page and 'id="chart-data"' in page
    assert 'data-metric="funnel.won">4<' in page
    assert 'data-metric="attribution.C-spring.w_shaped">0.65<' in page
    assert re.search(r"15,100\.00", page)


def test_bad_dates_are_refused_by_the_command_line(migrated_url: str) -> None:
    env = {**os.environ, "LEADFLOW_DATABASE_URL": migrated_url}
    for args in (["--since", "2026-13-01"], ["--since", "2026-03-02", "--until", "2026-03-01"]):
        done = subprocess.run(
            [sys.executable, "-m", "leadflow", "report", *args],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
        assert "2026" in done.stderr or "--since" in done.stderr
