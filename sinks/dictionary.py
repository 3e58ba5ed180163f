"""The data dictionary: every table and column of the store, described once.

``docs/data-dictionary.md``, ``docs/dbt/sources.yml`` and the PostgreSQL COMMENTs (migration
0008) are generated from DICTIONARY; a test keeps it equal to the models' columns.
Run ``python -m leadflow.sinks.dictionary`` to rewrite the two files.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, inspect

DOCS = Path(__file__).resolve().parent.parent / "docs"


@dataclass(frozen=True)
class TableDoc:
    grain: str  # what one row is
    key: tuple[str, ...]  # the columns that identify a row (unique together, never null)
    meaning: str
    columns: dict[str, str]


_CYCLE = "lead cycle number, from 1; a requalified lead starts the next cycle"

DICTIONARY: dict[str, TableDoc] = {
    "lead_lifecycle": TableDoc(
        "one row per lead (lead_id)",
        ("lead_id",),
        "The current state of each lead, folded from the set of its accepted events "
        "(contract section 3). Stage times are those of the current cycle.",
        {
            "lead_id": "the join key of marketing and sales events",
            "version": "grows with every write of the row; readers use it to detect change",
            "stage": "current stage: lead, mql, sal, sql, won, lost, recycled, disqualified;"
            " null before any stage",
            "cycle_no": _CYCLE,
            "source": "channel of lead.created (e.g. paid_search); null when unknown",
            "campaign_id": "campaign of lead.created, else of the latest touch or MQL",
            "owner_id": "sales owner of the latest assignment",
            "score": "latest lead score",
            "lead_at": "when the lead entered stage lead (UTC)",
            "mql_at": "when the current cycle entered mql (UTC)",
            "sal_at": "when the current cycle entered sal (UTC)",
            "sql_at": "when the current cycle entered sql (UTC)",
            "won_at": "when the deal was won (UTC)",
            "lost_at": "when the deal was lost (UTC)",
            "recycled_at": "when sales recycled the lead (a recycle reason) (UTC)",
            "disqualified_at": "when sales disqualified the lead (UTC)",
            "first_contact_at": "first sales response of the current cycle (UTC)",
            "rejection_reason": "reason of the current cycle's lead.rejected",
            "lost_reason": "reason of deal.lost",
            "opportunity_id": "the opportunity of the current cycle",
            "amount": "deal amount (exact decimal) of the latest opportunity or win",
            "currency": "three-letter currency of amount",
            "sla_status": "handoff SLA of the current cycle: met, breached or pending",
            "response_seconds": "seconds from MQL to the first sales response, current cycle",
            "event_count": "distinct accepted events of the lead",
            "is_orphan": "true while the lead has sales events but no lead.created",
            "last_event_at": "occurred_at of the lead's latest event (UTC)",
            "updated_at": "when the pipeline last wrote the row (UTC)",
        },
    ),
    "lead_stage_transitions": TableDoc(
        "one row per lead, cycle and stage entered",
        ("lead_id", "cycle_no", "stage"),
        "Every stage entry of every cycle. Counting distinct lead_id per stage gives the"
        " report's funnel; a lead that requalifies enters mql again in a new cycle.",
        {
            "lead_id": "the lead",
            "cycle_no": _CYCLE,
            "stage": "the stage entered",
            "entered_at": "when it was entered (UTC)",
            "inferred": "true when the stage was skipped and filled in (e.g. sql without sal)",
        },
    ),
    "handoff_sla": TableDoc(
        "one row per lead and cycle that entered mql",
        ("lead_id", "cycle_no"),
        "Whether sales answered each MQL within LEADFLOW_SLA_HOURS (or the SLA policy).",
        {
            "lead_id": "the lead",
            "cycle_no": _CYCLE,
            "mql_at": "when the cycle entered mql (UTC)",
            "deadline": "when the answer is due (UTC)",
            "responded_at": "first sales response after the MQL (UTC); null if none yet",
            "response_type": "the event that answered: lead.contacted, lead.accepted, ...",
            "response_seconds": "responded_at - mql_at in seconds",
            "status": "met, breached or pending",
            "owner_id": "sales owner at the time of the response or deadline",
            "policy": "name of the SLA policy that applies (LEADFLOW_SLA_POLICIES); null with the"
            " single LEADFLOW_SLA_HOURS clock",
            "response_business_seconds": "open time between mql_at and the response on the"
            " policy's calendar, in seconds; equals response_seconds without a calendar",
        },
    ),
    "funnel_daily": TableDoc(
        "one row per UTC day, source, campaign and stage",
        ("day", "source", "campaign_id", "stage"),
        "Stage entries per day: it counts entries per cycle, so summing it counts a lead once"
        " per cycle that entered the stage (more than the report's distinct leads when leads"
        " requalify).",
        {
            "day": "UTC day of entered_at",
            "source": "the lead's source ('unknown' for none)",
            "campaign_id": "the lead's campaign ('unknown' for none)",
            "stage": "the stage entered",
            "leads": "stage entries (lead and cycle) on that day",
        },
    ),
    "revenue_daily": TableDoc(
        "one row per UTC day, source, campaign and currency",
        ("day", "source", "campaign_id", "currency"),
        "Won deals and their exact amounts per day of won_at; never converted between currencies.",
        {
            "day": "UTC day of won_at",
            "source": "the lead's source ('unknown' for none)",
            "campaign_id": "the lead's campaign ('unknown' for none)",
            "currency": "three-letter currency",
            "won_deals": "deals won that day",
            "won_amount": "their total amount (exact decimal)",
        },
    ),
    "dead_letters": TableDoc(
        "one row per rejected message (topic, partition, offset, payload_hash)",
        ("topic", "partition", "offset", "payload_hash"),
        "Input the pipeline could not accept, with the reason (contract section 2). May hold"
        " personal data: leadership reads it, marketing and sales do not.",
        {
            "topic": "input topic of the record",
            "partition": "its partition",
            "offset": "its offset",
            "payload_hash": "sha256 of the stored payload, in hex: the same message read again is"
            " the same row, another message at a reused offset (a broker whose offsets started"
            " again) is another row",
            "reason": "invalid_json, invalid_event, unknown_event_type, wrong_topic,"
            " unsupported_schema_version, timestamp_out_of_range or conflicting_duplicate",
            "error": "a readable sentence saying what is wrong",
            "payload": "the raw value as received (text)",
            "received_at": "when the pipeline read it (UTC)",
        },
    ),
    "shared_goals": TableDoc(
        "one row per period, metric and currency",
        ("period", "metric", "currency"),
        "The goals marketing and sales share; set by leadership with `leadflow goals set`.",
        {
            "period": "a year (2026), quarter (2026-Q4) or month (2026-11)",
            "metric": "won_revenue, won_deals, mqls or sql",
            "currency": "three letters for won_revenue; '' when the goal counts every currency",
            "target": "the number to reach in the period",
            "updated_at": "when the goal was last set (UTC)",
        },
    ),
    "lead_events": TableDoc(
        "one row per accepted distinct event (event_id)",
        ("event_id",),
        "The event history both teams share: every accepted event, without personal data"
        " (email, company and country stay in lead_contacts). Written in the same transaction as"
        " the lead rows it produced; every derived table is a function of it (leadflow rebuild).",
        {
            "event_id": "the producer's unique event id",
            "lead_id": "the lead the event belongs to",
            "event_type": "lead.created, lead.touch, ... deal.lost",
            "occurred_at": "event time (UTC)",
            "source_system": "the producing tool, e.g. hubspot; null if not given",
            "source": "lead.created's channel; null for other types",
            "campaign_id": "the campaign of lead.created, lead.touch or lead.mql; else null",
            "channel": "lead.touch's or lead.contacted's channel; else null",
            "score": "lead.scored's or lead.mql's score; else null",
            "owner_id": "the sales owner a sales event carries; else null",
            "reason": "lead.rejected's or deal.lost's reason; else null",
            "opportunity_id": "the opportunity of opportunity.created, deal.won or deal.lost",
            "amount": "the amount of opportunity.created or deal.won, exact to the cent",
            "currency": "three upper-case letters, with the amount",
            "received_at": "when the pipeline wrote the event (UTC)",
        },
    ),
    "lead_retractions": TableDoc(
        "one row per copy of an event_id a lead sent that lost to another lead's copy",
        ("lead_id", "event_id", "copy_sha256"),
        "Conflicting duplicates across leads (contract section 2): each lead whose copy of an"
        " event_id lost to another lead's copy (the one whose canonical JSON sorts first)."
        " Written in the same transaction as the lead_events row that decides it; the losing"
        " lead's rows then no longer count the event, and a lead left with no event has no"
        " rows. Never deleted: leadflow rebuild and the workers' recovery read it.",
        {
            "lead_id": "the lead whose copy lost",
            "event_id": "the event_id; lead_events holds the winning copy",
            "copy_sha256": "sha256 of the canonical JSON of the lead's copy that lost, in hex",
            "recorded_at": "when the store recorded the loss (UTC)",
        },
    ),
    "lead_beaten_copies": TableDoc(
        "one row per copy of an event_id a lead sent that lost to another copy the lead sent",
        ("lead_id", "event_id", "copy_sha256"),
        "Conflicting duplicates within one lead (contract section 2): each copy of an event_id"
        " that lost to another copy of the same lead (the one whose canonical JSON sorts"
        " first). Each counts in the lead's version, so that a winning copy always takes a"
        " higher version than the copy it displaced. Never deleted: leadflow rebuild and the"
        " workers' recovery read it.",
        {
            "lead_id": "the lead that sent both copies",
            "event_id": "the event_id; lead_events holds the winning copy",
            "copy_sha256": "sha256 of the canonical JSON of the copy that lost, in hex",
            "recorded_at": "when the store recorded the copy (UTC)",
        },
    ),
    "lead_contacts": TableDoc(
        "one row per lead with contact details",
        ("lead_id",),
        "Personal data of lead.created, apart from the shared tables: leadership only.",
        {
            "lead_id": "the lead",
            "email": "contact e-mail",
            "company": "company name",
            "country": "country code",
            "updated_at": "when the pipeline last wrote the row (UTC)",
        },
    ),
    "attribution": TableDoc(
        "one row per won-path lead, campaign touched and attribution model",
        ("lead_id", "campaign_id", "model"),
        "How each lead's credit is shared among the campaigns it touched; per lead and model"
        " the credits sum to 1.",
        {
            "lead_id": "the lead",
            "campaign_id": "a campaign the lead touched",
            "model": "first_touch, last_touch, linear or w_shaped",
            "credit": "share of the lead given to the campaign, 0..1",
            "touch_count": "touches of the campaign by the lead",
        },
    ),
    "fx_rates": TableDoc(
        "one row per currency and UTC day with a rate",
        ("currency", "day"),
        "Exchange rates into the one reporting currency, loaded with `leadflow fx load`. A won"
        " deal converts at its currency's latest rate on or before the day it was won; a deal"
        " without such a rate is shown apart, never converted.",
        {
            "currency": "three-letter currency converted from",
            "day": "the UTC day the rate holds from",
            "to_currency": "the reporting currency (the same on every row)",
            "rate": "units of to_currency per unit of currency",
            "loaded_at": "when the rate was loaded (UTC)",
        },
    ),
    "store_settings": TableDoc(
        "one row per setting (key)",
        ("key",),
        "Settings the derived rows were computed with. `sla_policies_fingerprint` is the"
        " sha256 of the SLA policies (or of the single clock's LEADFLOW_SLA_HOURS), written by"
        " the first worker on an empty store and by `leadflow rebuild`; a worker with another"
        " fingerprint warns in its log and in /health.",
        {
            "key": "the setting's name, e.g. sla_policies_fingerprint",
            "value": "the setting's value as text",
            "updated_at": "when it was last written (UTC)",
        },
    ),
}


def comment_statements(bind: Connection, tables: Iterable[str] | None = None) -> list[str]:
    """PostgreSQL COMMENTs for the tables and columns of ``tables`` (default: all) that exist."""
    found = inspect(bind)
    present = set(found.get_table_names())
    statements = []
    for table in DICTIONARY if tables is None else tables:
        doc = DICTIONARY[table]
        if table not in present:
            continue
        summary = f"{doc.meaning} Grain: {doc.grain}. Key: {', '.join(doc.key)}."
        statements.append(f'COMMENT ON TABLE "{table}" IS {_literal(summary)}')
        columns = {c["name"] for c in found.get_columns(table)}
        for column, meaning in doc.columns.items():
            if column in columns:
                statements.append(f'COMMENT ON COLUMN "{table}"."{column}" IS {_literal(meaning)}')
    return statements


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# How the exact numbers (amounts, won_amount, credit, target, rate) are stored.
EXACT_NUMBERS = (
    "Amounts (lead_lifecycle.amount, lead_events.amount, revenue_daily.won_amount,"
    " shared_goals.target), attribution.credit and fx_rates.rate never pass through a binary"
    " float. PostgreSQL stores them as NUMERIC(precision, scale). SQLite, which has no decimal"
    " type, stores in the same NUMERIC column the integer count of the column's smallest unit:"
    " cents for amounts and targets (scale 2), millionths for credit (scale 6), 10^-10 for"
    " rates (scale 10); `SUM` over them adds integers exactly, and leadflow reads each integer"
    " back as a decimal. A SQL reader of a SQLite store divides by 10^scale"
    " (`won_amount / 100.0` is a float again: sum first, divide last). SQLite's 64-bit"
    " integers bound them: amounts below 92,233,720,368,547,758.07, rates below 100,000,000."
)


def render_markdown() -> str:
    """docs/data-dictionary.md."""
    lines = [
        "# Data dictionary",
        "",
        "Generated from `sinks/dictionary.py` (`python -m leadflow.sinks.dictionary`); do not"
        " edit by hand. Times are UTC; amounts are exact decimals in their own currency.",
        "",
        "## Exact numbers",
        "",
        EXACT_NUMBERS,
        "",
    ]
    for name, doc in DICTIONARY.items():
        lines += [f"## {name}", "", doc.meaning, "", f"- grain: {doc.grain}"]
        lines += [f"- key: {', '.join(doc.key)}", "", "| column | meaning |", "|---|---|"]
        lines += [f"| {column} | {text} |" for column, text in doc.columns.items()]
        lines.append("")
    return "\n".join(lines)


def render_dbt_sources() -> str:
    """docs/dbt/sources.yml: each table, its columns, and unique/not_null tests on its grain."""
    out = ["version: 2", "", "sources:", "  - name: leadflow", "    tables:"]
    for name, doc in DICTIONARY.items():
        out += [f"      - name: {name}", f"        description: {_yaml(doc.meaning)}"]
        if len(doc.key) > 1:
            out += ["        tests:", "          - dbt_utils.unique_combination_of_columns:"]
            out += ["              combination_of_columns: [" + ", ".join(doc.key) + "]"]
        out.append("        columns:")
        for column, text in doc.columns.items():
            out += [f"          - name: {column}", f"            description: {_yaml(text)}"]
            if column in doc.key:
                tests = ["not_null", "unique"] if len(doc.key) == 1 else ["not_null"]
                out.append(f"            tests: [{', '.join(tests)}]")
    return "\n".join(out) + "\n"


def _yaml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_docs(folder: Path = DOCS) -> list[Path]:
    """Write the data dictionary and the dbt sources under ``folder``."""
    targets = {
        folder / "data-dictionary.md": render_markdown(),
        folder / "dbt" / "sources.yml": render_dbt_sources(),
    }
    for path, content in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return list(targets)


if __name__ == "__main__":
    for written in write_docs(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS):
        print(f"wrote {written}")
