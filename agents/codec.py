"""Bytes in and out of Kafka: table state, forwarded facts, lifecycle snapshots (section 5)."""

from __future__ import annotations

import operator
import zlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from leadflow.agents.facts import Fact, event_document, from_micros, to_decimal
from leadflow.agents.fold import Header, Lost
from leadflow.schemas.records import LeadSnapshot
from leadflow.schemas.vocabulary import EVENT_TYPES

_EVENT_ID = operator.attrgetter("event_id")

# The largest table value written: Kafka's default record limit is 1 MiB (1048576 bytes) and the
# changelog record also carries the key (a lead_id, at most 512 bytes) and its framing.
STATE_LIMIT = 1_000_000
# A table value whose facts take more than this is written compressed (format 1 below).
COMPRESS_ABOVE = 16 * 1024
_COMPRESSED = b"\x01"  # format 1's first byte; format 0 is plain JSON and starts with "["


def _row(fact: Fact) -> tuple[Any, ...]:
    row = tuple(fact)
    end = len(row)
    while row[end - 1] is None:  # trailing optional fields default to None again on decode
        end -= 1
    return row[:end]


def encode_row(fact: Fact) -> bytes:
    """One fact as the table value holds it (a JSON array, trailing nulls left out)."""
    # A copy: orjson's own bytes object keeps a 4 KiB allocation, whatever its length.
    return bytes(memoryview(orjson.dumps(_row(fact))))


def encode_state(
    header: Header,
    facts: list[Fact],
    rows: Mapping[str, bytes] | None = None,
    lost: Lost | None = None,
    beaten: Lost | None = None,
) -> bytes:
    """The table value: a small header (for gauges and the SLA clock), the distinct facts and
    the lead's copies that lost to another lead's.

    Format 0, for leads with few facts: ``[stage, orphan, deadline_us, statuses, [facts]]``,
    then ``{event_id: [copy digests]}`` of its copies that lost to another lead's as a sixth
    item when the lead lost any, and of its copies that lost to another of its copies as a
    seventh when any (the sixth then ``{}`` if need be). Format 1, once the facts pass
    COMPRESS_ABOVE bytes: ``\\x01``, the header's JSON array (the two objects its fifth and
    sixth items, the same way), a newline, then the facts' JSON array compressed with zlib.
    Both decode, with or without either object; the encoding is a function of the header, the
    set of facts and the two objects. ``rows``: each fact's
    :func:`encode_row` by ``event_id``, if already known (KeyError if one is missing).
    """
    if rows is None:
        encoded = map(encode_row, facts)
    else:
        encoded = map(rows.__getitem__, map(_EVENT_ID, facts))
    body = b"[" + b",".join(encoded) + b"]"
    head = orjson.dumps(list(header))
    tail = b""
    if lost or beaten:
        tail = b"," + _digests(lost or {})
    if beaten:
        tail += b"," + _digests(beaten)
    if len(body) <= COMPRESS_ABOVE:
        return head[:-1] + b"," + body + tail + b"]"
    return _COMPRESSED + head[:-1] + tail + b"]\n" + zlib.compress(body, 1)


def _digests(copies: Lost) -> bytes:
    named = {event_id: sorted(digests) for event_id, digests in copies.items()}
    return orjson.dumps(named, option=orjson.OPT_SORT_KEYS)


def decode_state(raw: bytes | None) -> tuple[Header | None, list[Fact]]:
    header, facts, _ = decode_lead(raw)
    return header, facts


Copies = dict[str, list[str]]  # event_id -> copy digests


def decode_lead(raw: bytes | None) -> tuple[Header | None, list[Fact], Copies]:
    """A table value's header, facts and copies lost to another lead's (event_id -> copy
    digests; none in a value that names none)."""
    header, facts, lost, _ = decode_copies(raw)
    return header, facts, lost


def decode_copies(raw: bytes | None) -> tuple[Header | None, list[Fact], Copies, Copies]:
    """A table value's header, facts, copies lost to another lead's and copies lost to
    another copy of the lead's (none in a value that names none)."""
    if not raw:
        return None, [], {}, {}
    if raw[:1] == _COMPRESSED:
        head, _, body = raw[1:].partition(b"\n")  # orjson never writes a raw newline
        rows = orjson.loads(zlib.decompress(body))
        stage, orphan, deadline, statuses, *copies = orjson.loads(head)
    else:
        stage, orphan, deadline, statuses, rows, *copies = orjson.loads(raw)
    facts = [Fact(*row) for row in rows]
    lost = copies[0] if copies else {}
    beaten = copies[1] if len(copies) > 1 else {}
    return Header(stage, orphan, deadline, statuses), facts, lost, beaten


def decode_header(raw: bytes) -> Header:
    """Only the header of a table value (format 0 parses its facts too; orjson is fast)."""
    if raw[:1] == _COMPRESSED:
        return Header(*orjson.loads(raw[1:].partition(b"\n")[0])[:4])
    header, _ = decode_state(raw)
    assert header is not None
    return header


Origin = tuple[str, int, int]  # topic, partition, offset of the message an event came in


def encode_fact(lead_id: str, fact: Fact, origin: Origin | None = None) -> bytes:
    """One fact with its lead (and where it came in), as forwarded to the re-keying topic."""
    if origin is None:
        return orjson.dumps([lead_id, *_row(fact)])
    return orjson.dumps([lead_id, list(origin), *_row(fact)])


def decode_forwarded(raw: bytes) -> tuple[str, Fact, Origin | None]:
    """A forwarded fact and its origin (None when forwarded by a version that did not say)."""
    lead_id, *row = orjson.loads(raw)
    origin = None
    if row and isinstance(row[0], list):  # a fact's first field is its timestamp, an int
        topic, partition, offset = row.pop(0)
        origin = (topic, partition, offset)
    return lead_id, Fact(*row), origin


def encode_retraction(lead_id: str, event_id: str, copy: str) -> bytes:
    """A retraction for the re-keying topic: ``lead_id``'s copy (``copy``: its copy digest)
    of ``event_id`` lost to another lead's. A JSON object, where a forwarded fact is an array;
    only a worker writes either."""
    return orjson.dumps({"retract": event_id, "lead_id": lead_id, "copy": copy})


def decode_retraction(raw: bytes) -> tuple[str, str, str] | None:
    """(lead_id, event_id, copy digest) of a retraction record; None for a forwarded fact."""
    if raw[:1] != b"{":
        return None
    document = orjson.loads(raw)
    return document["lead_id"], document["retract"], document["copy"]


_EVENT_FIELDS = Fact._fields[3:]


def event_payload(lead_id: str, fact: Fact) -> bytes:
    """An accepted event written back as event JSON (the fields the fold keeps), for a dead
    letter of a forwarded event whose original message is on another partition."""
    return orjson.dumps(event_document(lead_id, fact), option=orjson.OPT_UTC_Z)


# The fields of a fact that lead_events keeps: all but the personal data of lead.created.
_PERSONAL = frozenset({"email", "company", "country"})
_STORED_FIELDS = tuple(name for name in _EVENT_FIELDS if name not in _PERSONAL)


def event_row(lead_id: str, fact: Fact) -> dict[str, Any]:
    """The ``lead_events`` row of an accepted event (``received_at`` is the writer's)."""
    row: dict[str, Any] = {
        "event_id": fact.event_id,
        "lead_id": lead_id,
        "event_type": EVENT_TYPES[fact.rank],
        "occurred_at": from_micros(fact.ts),
    }
    row.update((name, getattr(fact, name)) for name in _STORED_FIELDS)
    row["amount"] = to_decimal(fact.amount)
    return row


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
