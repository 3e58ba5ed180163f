"""The report over the golden scenarios written through the SQL sink, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import Engine, select, text

from leadflow.agents.fold import fold
from leadflow.pipeline.reporting import run_report
from leadflow.pipeline.reporting.formats import render_table, to_csv, to_json
from leadflow.pipeline.reporting.model import (
    Funnel,
    Report,
    Revenue,
    SlaLine,
    SpeedToLead,
    Totals,
)
from leadflow.pipeline.reporting.queries import build_report, percentile
from leadflow.schemas.classify import DeadLetter
from leadflow.schemas.errors import PermanentStoreError, StoreError
from leadflow.schemas.vocabulary import STAGES
from leadflow.sinks import SqlSink, make_engine
from leadflow.sinks.models import REVENUE
from tests.support.golden import Scenario, config_of, facts_of, load_scenarios

NOW = datetime(2026, 6, 1, tzinfo=UTC)
STEPS = (("lead", "mql"), ("mql", "sal"), ("sal", "sql"), ("sql", "won"))


def unique_leads(scenarios: list[Scenario]) -> list[Scenario]:
    """The first scenario of each lead (01 and 02 are the same lead, L-1, with equal rows)."""
    kept: dict[str, Scenario] = {}
    for scenario in scenarios:
        kept.setdefault(scenario.lead_id, scenario)
    return list(kept.values())


SCENARIOS = unique_leads(load_scenarios())
DEAD_LETTERS = [
    DeadLetter("marketing-leads", 0, offset, reason, "The message was rejected.", "{", NOW)
    for offset, reason in enumerate(["invalid_json", "wrong_topic", "invalid_json"])
]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def store_url(migrated_url: str) -> str:
    return migrated_url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


def write_golden(engine: Engine) -> None:
    snapshots = [fold(s.lead_id, facts_of(s), config_of(s), s.now) for s in SCENARIOS]
    SqlSink(engine).write_batch(snapshots, DEAD_LETTERS, NOW)


# -- the expected report, from the scenarios' expected rows ------------------------------------


def nearest_rank(values: list[float], pct: int) -> float | None:
    """The smallest value v with at least pct% of the values <= v (by definition, not by index)."""
    n = len(values)
    candidates = [v for v in values if sum(x <= v for x in values) * 100 >= pct * n]
    return min(candidates) if candidates else None


def expected_funnel(entered: dict[str, set[str]]) -> Funnel:
    stages = {stage: len(entered.get(stage, set())) for stage in STAGES}
    conversion = {f"{a}->{b}": (stages[b] / stages[a] if stages[a] else None) for a, b in STEPS}
    return Funnel(stages, conversion)


def expected_report(scenarios: list[Scenario], dead: list[DeadLetter]) -> Report:
    entered: dict[str, set[str]] = defaultdict(set)
    by_source: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    statuses: Counter[str] = Counter()
    seconds: list[float] = []
    slas: list[dict[str, Any]] = []
    deals: Counter[str] = Counter()
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    for scenario in scenarios:
        rows = scenario.expected
        life = rows["lead_lifecycle"]
        for transition in rows["lead_stage_transitions"]:
            entered[transition["stage"]].add(scenario.lead_id)
            by_source[life["source"] or "unknown"][transition["stage"]].add(scenario.lead_id)
        for sla in rows["handoff_sla"]:
            slas.append(sla)
            statuses[sla["status"]] += 1
            if sla["response_seconds"] is not None:
                seconds.append(float(sla["response_seconds"]))
        if life["stage"] == "won":
            deals[life["currency"]] += 1
            amounts[life["currency"]] += Decimal(life["amount"])
    reasons = Counter(d.reason for d in dead)
    return Report(
        funnel=expected_funnel(entered),
        funnel_by_source={src: expected_funnel(by_source[src]) for src in sorted(by_source)},
        speed_to_lead=SpeedToLead(
            len(seconds), nearest_rank(seconds, 50), nearest_rank(seconds, 90)
        ),
        sla={status: statuses[status] for status in ("met", "breached", "pending")},
        revenue={c: Revenue(deals[c], amounts[c]) for c in sorted(deals)},
        totals=Totals(
            leads=len(scenarios),
            orphans=sum(bool(s.expected["lead_lifecycle"]["is_orphan"]) for s in scenarios),
            dead_letters=len(dead),
            dead_letters_by_reason=dict(sorted(reasons.items())),
        ),
        sla_by_policy=expected_sla_lines(slas, "policy", "single_clock"),
    )


def _expected_speed(values: list[float]) -> SpeedToLead:
    return SpeedToLead(len(values), nearest_rank(values, 50), nearest_rank(values, 90))


def expected_sla_lines(rows: list[dict[str, Any]], key: str, missing: str) -> tuple[SlaLine, ...]:
    """handoff_sla rows grouped by ``key`` (``missing`` for null), counted by hand."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row.get(key) or missing].append(row)
    lines = []
    for name in sorted(groups):
        group = groups[name]
        wall = [float(r["response_seconds"]) for r in group if r["response_seconds"] is not None]
        # Version-1 rows have no business column: without a calendar it equals the wall clock.
        business = [
            float(r.get("response_business_seconds", r["response_seconds"]))
            for r in group
            if r.get("response_business_seconds", r["response_seconds"]) is not None
        ]
        counts = Counter(r["status"] for r in group)
        lines.append(
            SlaLine(
                name,
                counts["met"],
                counts["breached"],
                counts["pending"],
                _expected_speed(business),
                _expected_speed(wall),
            )
        )
    return tuple(lines)


def _speed_from(data: dict[str, Any]) -> SpeedToLead:
    return SpeedToLead(data["count"], data["p50_seconds"], data["p90_seconds"])


def sla_lines_from_json(data: dict[str, Any]) -> tuple[SlaLine, ...]:
    lines = []
    for name, d in data.items():
        line = SlaLine(
            name,
            d["met"],
            d["breached"],
            d["pending"],
            _speed_from(d["business"]),
            _speed_from(d["wall"]),
        )
        assert (line.met_rate, line.breach_rate) == (d["met_rate"], d["breach_rate"])
        lines.append(line)
    return tuple(lines)


def sla_lines_from_csv(rows: list[dict[str, str]]) -> tuple[SlaLine, ...]:
    fields: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows:
        fields[row["key"]][row["subkey"]] = row["value"]
    data = {
        name: {
            **{k: int(f[k]) for k in ("met", "breached", "pending")},
            "met_rate": _number(f["met_rate"]),
            "breach_rate": _number(f["breach_rate"]),
            **{
                clock: {
                    "count": int(f[f"{clock}_count"]),
                    "p50_seconds": _number(f[f"{clock}_p50_seconds"]),
                    "p90_seconds": _number(f[f"{clock}_p90_seconds"]),
                }
                for clock in ("business", "wall")
            },
        }
        for name, f in fields.items()
    }
    return sla_lines_from_json(data)


# -- parsing the outputs back, independently of pipeline.report ---------------------------------


def funnel_from(data: dict[str, Any]) -> Funnel:
    return Funnel(dict(data["stages"]), dict(data["conversion"]))


def report_from_json(payload: str) -> Report:
    data = json.loads(payload)
    speed, totals = data["speed_to_lead"], data["totals"]
    assert speed["percentile_method"] == "nearest-rank"
    return Report(
        funnel=funnel_from(data["funnel"]),
        funnel_by_source={s: funnel_from(f) for s, f in data["funnel_by_source"].items()},
        speed_to_lead=SpeedToLead(speed["count"], speed["p50_seconds"], speed["p90_seconds"]),
        sla=data["sla"],
        revenue={
            c: Revenue(r["won_deals"], Decimal(r["won_amount"])) for c, r in data["revenue"].items()
        },
        totals=Totals(
            totals["leads"],
            totals["orphans"],
            totals["dead_letters"],
            totals["dead_letters_by_reason"],
        ),
        sla_by_policy=sla_lines_from_json(data["sla_by_policy"]),
    )


def _number(cell: str) -> float | None:
    return None if cell == "" else float(cell)


def report_from_csv(payload: str) -> Report:
    reader = csv.DictReader(io.StringIO(payload))
    assert reader.fieldnames == ["section", "key", "subkey", "value"]
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in reader:
        rows[row["section"]].append(row)
    sources: dict[str, dict[str, dict[str, Any]]] = defaultdict(
        lambda: {"stages": {}, "conversion": {}}
    )
    for row in rows["funnel_by_source"]:
        sources[row["key"]]["stages"][row["subkey"]] = int(row["value"])
    for row in rows["conversion_by_source"]:
        sources[row["key"]]["conversion"][row["subkey"]] = _number(row["value"])
    speed = {row["key"]: row["value"] for row in rows["speed_to_lead"]}
    revenue: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows["revenue"]:
        revenue[row["key"]][row["subkey"]] = row["value"]
    totals = {row["key"]: int(row["value"]) for row in rows["totals"]}
    return Report(
        funnel=Funnel(
            {r["key"]: int(r["value"]) for r in rows["funnel"]},
            {r["key"]: _number(r["value"]) for r in rows["conversion"]},
        ),
        funnel_by_source={s: funnel_from(f) for s, f in sources.items()},
        speed_to_lead=SpeedToLead(
            int(speed["count"]), _number(speed["p50_seconds"]), _number(speed["p90_seconds"])
        ),
        sla={r["key"]: int(r["value"]) for r in rows["sla"]},
        revenue={
            c: Revenue(int(r["won_deals"]), Decimal(r["won_amount"])) for c, r in revenue.items()
        },
        totals=Totals(
            totals["leads"],
            totals["orphans"],
            totals["dead_letters"],
            {r["key"]: int(r["value"]) for r in rows["dead_letters"]},
        ),
        sla_by_policy=sla_lines_from_csv(rows["sla_by_policy"]),
    )


def assert_round_trips(report: Report) -> None:
    assert report_from_json(to_json(report)) == report
    assert report_from_csv(to_csv(report)) == report
    assert to_json(report) == to_json(report_from_json(to_json(report)))  # stable key order


# -- tests ------------------------------------------------------------------------------------


def test_golden_scenarios_report(engine: Engine) -> None:
    write_golden(engine)
    report = build_report(engine)
    assert report == expected_report(SCENARIOS, DEAD_LETTERS)
    # Hand-checked figures for the twelve scenarios (eleven leads, L-1 twice).
    assert report.funnel.stages == {
        "lead": 11, "mql": 11, "sal": 7, "sql": 5, "won": 4,
        "lost": 2, "recycled": 1, "disqualified": 1,
    }  # fmt: skip
    assert report.funnel.conversion == {
        "lead->mql": 1.0, "mql->sal": 7 / 11, "sal->sql": 5 / 7, "sql->won": 4 / 5,
    }  # fmt: skip
    assert report.funnel_by_source["unknown"].stages["sal"] == 1  # the orphan L-6
    assert report.funnel_by_source["event"].conversion["sal->sql"] == 1.0
    assert report.funnel_by_source["display"].conversion["sal->sql"] is None
    assert report.speed_to_lead == SpeedToLead(11, 7200.0, 108000.0)
    assert report.sla == {"met": 9, "breached": 3, "pending": 0}
    assert report.revenue == {
        "EUR": Revenue(2, Decimal("15100.00")),
        "GBP": Revenue(1, Decimal("650.00")),
        "USD": Revenue(1, Decimal("900.00")),
    }
    assert str(report.revenue["USD"].won_amount) == "900.00"
    assert report.totals == Totals(11, 1, 3, {"invalid_json": 2, "wrong_topic": 1})
    assert list(report.funnel.stages) == list(STAGES)
    assert list(report.funnel_by_source) == sorted(report.funnel_by_source)
    assert_round_trips(report)


def test_per_source_funnels_add_up_to_the_overall_one(engine: Engine) -> None:
    write_golden(engine)
    report = build_report(engine)
    for stage, n in report.funnel.stages.items():
        assert sum(f.stages[stage] for f in report.funnel_by_source.values()) == n


def test_revenue_equals_revenue_daily_summed(engine: Engine) -> None:
    write_golden(engine)
    totals: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    with engine.connect() as conn:
        r = REVENUE.c  # typed: won_amount is integer cents on SQLite (ExactNumeric)
        for currency, deals, amount in conn.execute(select(r.currency, r.won_deals, r.won_amount)):
            totals[currency][0] += deals
            totals[currency][1] += Decimal(str(amount)).quantize(Decimal("0.01"))
    assert {c: Revenue(d, a) for c, (d, a) in totals.items()} == build_report(engine).revenue


def test_replaying_the_input_changes_nothing(engine: Engine) -> None:
    write_golden(engine)
    first = build_report(engine)
    write_golden(engine)
    assert build_report(engine) == first


def test_empty_store_gives_zeros(engine: Engine) -> None:
    report = build_report(engine)
    assert report.funnel.stages == dict.fromkeys(STAGES, 0)
    assert report.funnel.conversion == dict.fromkeys(
        ("lead->mql", "mql->sal", "sal->sql", "sql->won"), None
    )
    assert report.funnel_by_source == {}
    assert report.speed_to_lead == SpeedToLead(0, None, None)
    assert report.sla == {"met": 0, "breached": 0, "pending": 0}
    assert report.revenue == {}
    assert report.totals == Totals(0, 0, 0, {})
    assert_round_trips(report)
    console = Console(file=io.StringIO(), width=120)
    render_table(report, console)


def test_render_table_shows_the_numbers(engine: Engine) -> None:
    write_golden(engine)
    out = io.StringIO()
    render_table(build_report(engine), Console(file=out, width=200, color_system=None))
    shown = out.getvalue()
    for needle in ("paid_search", "63.6%", "15,100.00", "invalid_json", "2h 00m", "breached"):
        assert needle in shown, needle


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_run_report_formats(engine: Engine, store_url: str, fmt: str) -> None:
    write_golden(engine)
    out = io.StringIO()
    assert run_report(store_url, fmt, out) == 0
    expected = expected_report(SCENARIOS, DEAD_LETTERS)
    if fmt == "json":
        assert report_from_json(out.getvalue()) == expected
    elif fmt == "csv":
        assert report_from_csv(out.getvalue()) == expected
    else:
        assert "Funnel" in out.getvalue()


def test_run_report_rejects_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="table, json, csv"):
        run_report(f"sqlite:///{tmp_path / 'x.db'}", "xml", io.StringIO())


def assert_one_sentence_with_hint(error: StoreError) -> None:
    message = str(error)
    assert "\n" not in message and message.endswith(".")
    assert "leadflow db upgrade" in message


def test_missing_tables_is_a_permanent_store_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with pytest.raises(PermanentStoreError) as caught:
        run_report(f"sqlite:///{path}", "json", io.StringIO())
    assert_one_sentence_with_hint(caught.value)
    assert "lead_lifecycle" in str(caught.value)


def test_a_dropped_table_is_named(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE handoff_sla"))
    with pytest.raises(PermanentStoreError, match="handoff_sla") as caught:
        build_report(engine)
    assert_one_sentence_with_hint(caught.value)


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nothing.db"
    with pytest.raises(StoreError) as caught:
        run_report(f"sqlite:///{path}", "table", io.StringIO())
    assert_one_sentence_with_hint(caught.value)
    assert not path.exists()


def test_an_unreachable_postgresql_is_a_store_error() -> None:
    with pytest.raises(StoreError) as caught:
        run_report("postgresql://postgres:secret@127.0.0.1:1/test", "json", io.StringIO())
    assert_one_sentence_with_hint(caught.value)
    assert "secret" not in str(caught.value)


def test_a_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        run_report("nosuchdialect://x", "json", io.StringIO())


@dataclass(frozen=True)
class Case:
    values: list[float]
    p50: float | None
    p90: float | None


@pytest.mark.parametrize(
    "case",
    [
        Case([], None, None),
        Case([5.0], 5.0, 5.0),
        Case([3.0, 1.0], 1.0, 3.0),
        Case([float(i) for i in range(1, 11)], 5.0, 9.0),
        Case([float(i) for i in range(1, 12)], 6.0, 10.0),
    ],
)
def test_nearest_rank_percentiles(case: Case) -> None:
    values = sorted(case.values)
    assert (percentile(values, 50), percentile(values, 90)) == (case.p50, case.p90)
    assert (nearest_rank(values, 50), nearest_rank(values, 90)) == (case.p50, case.p90)
