"""The store writer's driver reads give the values SQLAlchemy's types read, on both stores."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from leadflow.sinks import make_engine
from leadflow.sinks.models import LIFECYCLE, SLA, TRANSITIONS
from leadflow.sinks.reads import rows_where
from tests.support.demo_store import write_demo_store


@pytest.mark.parametrize("table", [LIFECYCLE, TRANSITIONS, SLA], ids=lambda t: t.name)
def test_driver_reads_equal_sqlalchemy_reads(database_url: str, table: object) -> None:
    write_demo_store(database_url, leads=1500)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            names = [column.name for column in table.columns]  # type: ignore[attr-defined]
            expected = [tuple(row) for row in conn.execute(select(table))]
            assert len({row[0] for row in expected}) > 500  # more than one SQLite chunk
            ids = sorted({row[0] for row in expected} | {"no-such-lead"})
            got = list(rows_where(conn, table, names, "lead_id", ids))  # type: ignore[arg-type]
        assert sorted(got, key=repr) == sorted(expected, key=repr)
        for mine, theirs in zip(sorted(got, key=repr), sorted(expected, key=repr), strict=True):
            assert [type(v) for v in mine] == [type(v) for v in theirs]
            assert [getattr(v, "tzinfo", None) for v in mine] == [
                getattr(v, "tzinfo", None) for v in theirs
            ]
    finally:
        engine.dispose()
