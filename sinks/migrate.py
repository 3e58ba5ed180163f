"""Applying the store's Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from leadflow.sinks.engine import WRITE_OPTION, make_engine, no_statement_timeout
from leadflow.sinks.errors import translate

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0x6C66_6D69_6772_6174  # "lfmigrat": one migrator at a time per database


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if database_url is not None:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the store at ``database_url`` to ``revision`` (the newest schema by default); a
    no-op when it is there."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                no_statement_timeout(conn)  # a migration rewrites whole tables
                if conn.dialect.name == "postgresql":
                    lock = text("SELECT pg_advisory_xact_lock(:id)")
                    conn.execute(lock, {"id": MIGRATION_LOCK_ID})
                config = alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
    except SQLAlchemyError as error:
        raise translate(error, "migrating the store") from error
    finally:
        engine.dispose()
