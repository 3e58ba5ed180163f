"""Bytes in and out of Kafka: table state, forwarded facts, lifecycle snapshots (section 5)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from agents.facts import Fact
from agents.fold import Header, LeadSnapshot


def _row(fact: Fact) -> tuple[Any, ...]:
    row = tuple(fact)
    end = len(row)
    while row[end - 1] is None:  # trailing optional fields default to None again on decode
        end -= 1
    return row[:end]


def encode_state(header: Header, facts: list[Fact]) -> bytes:
    """The table value: a small header (for gauges and the SLA clock) and the distinct facts."""
    return orjson.dumps([*header, [_row(fact) for fact in facts]])


def decode_state(raw: bytes | None) -> tuple[Header | None, list[Fact]]:
    if not raw:
        return None, []
    stage, orphan, deadline, statuses, rows = orjson.loads(raw)
    return Header(stage, orphan, deadline, statuses), [Fact(*row) for row in rows]


def decode_header(raw: bytes) -> Header:
    """Only the header of a table value (the facts are parsed too; orjson is fast)."""
    header, _ = decode_state(raw)
    assert header is not None
    return header


def encode_fact(lead_id: str, fact: Fact) -> bytes:
    """One fact with its lead, as forwarded to the re-keying topic."""
    return orjson.dumps([lead_id, *_row(fact)])


def decode_fact(raw: bytes) -> tuple[str, Fact]:
    lead_id, *row = orjson.loads(raw)
    return lead_id, Fact(*row)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def snapshot_document(snapshot: LeadSnapshot, updated_at: datetime) -> dict[str, Any]:
    """The lifecycle stream's object: lifecycle fields, ``transitions``, ``sla``, ``version``."""
    document = dict(snapshot.lifecycle)
    document["updated_at"] = updated_at
    document["transitions"] = [
        {k: v for k, v in row.items() if k != "lead_id"} for row in snapshot.transitions
    ]
    document["sla"] = [{k: v for k, v in row.items() if k != "lead_id"} for row in snapshot.sla]
    document["version"] = snapshot.version
    return document


def encode_snapshot(snapshot: LeadSnapshot, updated_at: datetime) -> bytes:
    return orjson.dumps(
        snapshot_document(snapshot, updated_at), default=_default, option=orjson.OPT_UTC_Z
    )
