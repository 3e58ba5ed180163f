"""``leadflow rebuild``: every derived table recomputed from lead_events with the current
settings, in one transaction, a chunk of leads in memory at a time (contract section 7)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from leadflow.agents.fold import FoldConfig, LeadFold, sla_fingerprint
from leadflow.agents.history import fact_of
from leadflow.sinks.engine import WRITE_OPTION, make_engine, no_statement_timeout
from leadflow.sinks.rebuild import Moved, lead_chunks, replace_chunk, take_store
from leadflow.sinks.settings import SLA_FINGERPRINT, write_setting

QUIET = timedelta(seconds=60)
SHOWN = 20  # moved leads listed by name in the summary


def rebuild(
    url: str, config: FoldConfig, now: datetime | None = None, quiet: timedelta = QUIET
) -> Moved:
    """Recompute the derived rows of every lead of lead_events and record the SLA fingerprint;
    commit once, at the end."""
    now = now or datetime.now(UTC)
    moved = Moved()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                no_statement_timeout(conn)  # whole-table scans
                take_store(conn, datetime.now(UTC), quiet)
                for chunk in lead_chunks(conn):
                    snapshots = [
                        LeadFold(lead_id, config, map(fact_of, rows), lost, beaten).snapshot(now)
                        for lead_id, (rows, lost, beaten) in chunk.items()
                    ]
                    replace_chunk(conn, snapshots, now, moved)
                # Every cycle now follows this config: the store records its fingerprint.
                write_setting(conn, SLA_FINGERPRINT, sla_fingerprint(config), datetime.now(UTC))
    finally:
        engine.dispose()
    return moved


def summary(moved: Moved) -> Iterable[str]:
    """The lines ``leadflow rebuild`` prints."""
    yield (
        f"rebuilt {moved.leads} leads from lead_events: {moved.rewritten} rewritten, "
        f"{moved.stage_moved} changed stage, {moved.sla_moved} changed SLA status"
    )
    kinds = (("stage", moved.stage, moved.stage_moved), ("SLA status", moved.sla, moved.sla_moved))
    for what, changes, count in kinds:
        for lead_id, before, after in changes[:SHOWN]:
            yield f"  {lead_id}: {what} {before or 'none'} -> {after or 'none'}"
        if count > SHOWN:
            yield f"  ... and {count - SHOWN} more leads whose {what} moved"
