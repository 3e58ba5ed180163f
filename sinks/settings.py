"""The store's own settings (store_settings): what its derived rows were computed with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from leadflow.sinks.aggregates import upsert
from leadflow.sinks.models import EVENTS, LIFECYCLE, STORE_SETTINGS

SLA_FINGERPRINT = "sla_policies_fingerprint"


def read_setting(conn: Connection, key: str) -> str | None:
    c = STORE_SETTINGS.c
    value: str | None = conn.execute(select(c.value).where(c.key == key)).scalar()
    return value


def write_setting(conn: Connection, key: str, value: str, now: datetime) -> None:
    """Insert or replace one setting; an equal value keeps its row (and its updated_at)."""
    stmt = upsert(conn, STORE_SETTINGS).values(key=key, value=value, updated_at=now)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": value, "updated_at": now},
            where=STORE_SETTINGS.c.value != value,
        )
    )


def has_leads(conn: Connection) -> bool:
    """Whether any derived row or stored event exists (an empty store takes any setting)."""
    return any(
        conn.execute(select(table.c.lead_id).limit(1)).first() is not None
        for table in (EVENTS, LIFECYCLE)
    )


def claim_fingerprint(conn: Connection, fingerprint: str, now: datetime) -> str | None:
    """The SLA fingerprint the store's rows were computed with; an empty store takes ours."""
    if not has_leads(conn):
        write_setting(conn, SLA_FINGERPRINT, fingerprint, now)
        return fingerprint
    return read_setting(conn, SLA_FINGERPRINT)
