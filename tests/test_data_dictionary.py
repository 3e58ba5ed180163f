"""The data dictionary: complete, generated files up to date, COMMENTs on PostgreSQL (item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from leadflow.sinks.dictionary import DICTIONARY, render_dbt_sources, render_markdown
from leadflow.sinks.migrate import alembic_config, upgrade
from leadflow.sinks.models import TABLES

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_table_and_column_is_described_once() -> None:
    assert set(DICTIONARY) == set(TABLES)
    for name, table in TABLES.items():
        doc = DICTIONARY[name]
        assert list(doc.columns) == [c.name for c in table.columns], name
        assert set(doc.key) == {c.name for c in table.primary_key.columns}, name
        assert all(text.strip() for text in doc.columns.values()), name
        assert doc.grain.startswith("one row per"), name


def test_the_generated_files_are_up_to_date() -> None:
    hint = "run: .venv/bin/python -m leadflow.sinks.dictionary"
    assert (DOCS / "data-dictionary.md").read_text(encoding="utf-8") == render_markdown(), hint
    assert (DOCS / "dbt" / "sources.yml").read_text(encoding="utf-8") == render_dbt_sources(), hint


def test_dbt_sources_test_each_grain() -> None:
    sources = yaml.safe_load(render_dbt_sources())["sources"][0]["tables"]
    by_name = {t["name"]: t for t in sources}
    assert set(by_name) == set(DICTIONARY)
    for name, doc in DICTIONARY.items():
        columns = {c["name"]: c for c in by_name[name]["columns"]}
        for key in doc.key:
            assert "not_null" in columns[key]["tests"], (name, key)
        if len(doc.key) == 1:
            assert "unique" in columns[doc.key[0]]["tests"]
        else:
            (combo,) = by_name[name]["tests"]
            assert combo["dbt_utils.unique_combination_of_columns"]["combination_of_columns"] == (
                list(doc.key)
            )


def test_funnel_daily_says_why_its_sum_differs_from_the_report() -> None:
    assert "per cycle" in DICTIONARY["funnel_daily"].meaning


@pytest.mark.postgres
def test_the_migration_writes_postgresql_comments(pg_schema_url: str) -> None:
    upgrade(pg_schema_url)  # SQLite has no comments: PostgreSQL only
    engine = create_engine(pg_schema_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            table = conn.execute(
                text("SELECT obj_description(to_regclass('funnel_daily'), 'pg_class')")
            ).scalar()
            column = conn.execute(
                text(
                    "SELECT col_description(to_regclass('handoff_sla'), a.attnum)"
                    " FROM pg_attribute a WHERE a.attrelid = to_regclass('handoff_sla')"
                    " AND a.attname = 'status'"
                )
            ).scalar()
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert head == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert table is not None and "Grain: one row per UTC day" in table
    assert column == DICTIONARY["handoff_sla"].columns["status"]
