"""SLA by policy and by owner in the report equals SQL over handoff_sla, on both stores."""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import Connection, text

from leadflow.agents.fold import FoldConfig
from leadflow.agents.sla.policies import parse_policies
from leadflow.pipeline.reporting.formats import to_dict
from leadflow.pipeline.reporting.html import render_report_html
from leadflow.pipeline.reporting.model import ReportQuery, SlaLine
from leadflow.pipeline.reporting.queries import build_report
from leadflow.sinks import make_engine
from tests.support.rebuilds import run_pipeline
from tests.support.sla import POLICY_FILE

REASONS = frozenset({"not_now", "nurture", "no_budget", "timing"})
POLICIES = FoldConfig(24 * 3600.0, REASONS, parse_policies(POLICY_FILE))
SINGLE = FoldConfig(4 * 3600.0, REASONS)


def sql_counts(conn: Connection, key: str) -> dict[str, dict[str, int]]:
    rows = conn.execute(text(f"SELECT {key}, status, COUNT(*) FROM handoff_sla GROUP BY 1, 2"))
    found: dict[str, dict[str, int]] = {}
    for name, status, n in rows:
        found.setdefault(name, {})[status] = int(n)
    return found


def sql_percentile(conn: Connection, key: str, name: str, column: str, pct: int) -> float | None:
    """Nearest rank in SQL: the value at row ceil(pct * n / 100) in ascending order."""
    where = f"{key} = :name AND {column} IS NOT NULL"
    n = conn.execute(text(f"SELECT COUNT(*) FROM handoff_sla WHERE {where}"), {"name": name})
    count = int(n.scalar_one())
    if count == 0:
        return None
    offset = max(1, math.ceil(pct * count / 100)) - 1
    value = conn.execute(
        text(f"SELECT {column} FROM handoff_sla WHERE {where} ORDER BY {column} LIMIT 1 OFFSET :o"),
        {"name": name, "o": offset},
    ).scalar_one()
    return float(value)


def assert_lines_equal_sql(conn: Connection, key: str, lines: tuple[SlaLine, ...]) -> None:
    counts = sql_counts(conn, key)
    assert [line.key for line in lines] == sorted(counts)
    for line in lines:
        found = counts[line.key]
        assert (line.met, line.breached, line.pending) == tuple(
            found.get(s, 0) for s in ("met", "breached", "pending")
        )
        decided = line.met + line.breached
        assert line.met_rate == (line.met / decided if decided else None)
        assert line.breach_rate == (line.breached / decided if decided else None)
        for speed, column in (
            (line.business, "response_business_seconds"),
            (line.wall, "response_seconds"),
        ):
            assert speed.p50_seconds == sql_percentile(conn, key, line.key, column, 50)
            assert speed.p90_seconds == sql_percentile(conn, key, line.key, column, 90)


def report_and_check(url: str) -> tuple[Any, dict[str, Any]]:
    engine = make_engine(url)
    try:
        report = build_report(engine, ReportQuery(details=True))
        with engine.connect() as conn:
            assert_lines_equal_sql(conn, "COALESCE(policy, 'single_clock')", report.sla_by_policy)
            assert report.details is not None
            assert_lines_equal_sql(conn, "COALESCE(owner_id, 'unknown')", report.details.sla_owners)
    finally:
        engine.dispose()
    return report, json.loads(json.dumps(to_dict(report)))


def test_sla_by_policy_and_owner_equal_sql_with_a_policy_file(migrated_url: str) -> None:
    run_pipeline(migrated_url, POLICIES)
    report, data = report_and_check(migrated_url)
    names = {line.key for line in report.sla_by_policy}
    assert len(names) >= 2 and "single_clock" not in names
    # Business hours differ from the wall clock for some calendar policy.
    assert any(line.business.p90_seconds != line.wall.p90_seconds for line in report.sla_by_policy)
    assert set(data["sla_by_policy"]) == names
    page = render_report_html(report)
    assert 'id="sla-policy"' in page
    for line in report.sla_by_policy:
        assert f'data-metric="sla_policy_rate.{line.key}"' in page


def test_without_a_policy_file_the_one_policy_is_single_clock(migrated_url: str) -> None:
    run_pipeline(migrated_url, SINGLE)
    report, data = report_and_check(migrated_url)
    (line,) = report.sla_by_policy
    assert line.key == "single_clock"
    assert line.business == line.wall
    assert (line.met, line.breached, line.pending) == tuple(
        report.sla[s] for s in ("met", "breached", "pending")
    )
    assert data["sla_by_policy"]["single_clock"]["met_rate"] == line.met_rate
