"""The shared report: the model, reading it from the store, and its formats."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from sqlalchemy import Engine

from leadflow.pipeline.reporting.formats import render_table, to_csv, to_json
from leadflow.pipeline.reporting.html import render_report_html
from leadflow.pipeline.reporting.model import FORMATS, Report, ReportQuery
from leadflow.pipeline.reporting.queries import build_report, open_engine
from leadflow.pipeline.reporting.trends import read_glance, read_trends


def run_report(
    database_url: str,
    fmt: str,
    out: TextIO,
    query: ReportQuery | None = None,
    *,
    full: bool = False,
) -> int:
    """``leadflow report``: read the store at ``database_url`` and write ``fmt`` to ``out``.

    The table shows the top rows of each breakdown unless ``full``; other formats keep all.
    """
    query = query or ReportQuery(details=True)
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    engine = open_engine(database_url)
    try:
        report = build_report(engine, query)
        html = _html(engine, report) if fmt == "html" else ""
    finally:
        engine.dispose()
    if fmt == "table":
        render_table(report, Console(file=out, markup=False, emoji=False), full=full)
    elif fmt == "html":
        out.write(html)
    else:
        out.write(to_json(report) if fmt == "json" else to_csv(report))
    return 0


def _html(engine: Engine, report: Report) -> str:
    """The HTML report with the dashboard's one-glance strip and trends, read in the same go."""
    glance = read_glance(engine, report.query)
    with engine.connect() as conn:
        trends = read_trends(conn, report.query)
    return render_report_html(report, glance=glance, trends=trends)
