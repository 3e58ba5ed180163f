"""JSON Lines input of `leadflow publish`: each line checked and routed to a topic, or refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from leadflow.schemas.classify import Rejection, classify
from leadflow.schemas.vocabulary import EVENT_TYPES, TOPIC_KINDS, topic_kind_of

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Outgoing:
    """One accepted line, ready to produce: topic kind, key (the lead_id) and value bytes."""

    line_no: int
    topic_kind: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Refusal:
    """One line that will not be published, with a dead-letter reason code and a sentence."""

    line_no: int
    reason: str
    error: str


def read_jsonl(path: Path, now: datetime | None = None) -> tuple[list[Outgoing], list[Refusal]]:
    """Every non-blank line of ``path`` as an Outgoing message or a Refusal, in file order."""
    outgoing: list[Outgoing] = []
    refusals: list[Refusal] = []
    for item in iter_jsonl(path, now):
        if isinstance(item, Outgoing):
            outgoing.append(item)
        else:
            refusals.append(item)
    return outgoing, refusals


def iter_jsonl(path: Path, now: datetime | None = None) -> Iterator[Outgoing | Refusal]:
    """Stream ``path`` line by line; blank lines are skipped, line numbers count from 1."""
    now = now or datetime.now(UTC)
    with path.open("rb") as lines:
        for line_no, raw in enumerate(lines, start=1):
            line = raw.removeprefix(_BOM) if line_no == 1 else raw
            if line.strip():
                yield parse_line(line, line_no, now)


def parse_line(line: bytes, line_no: int, now: datetime) -> Outgoing | Refusal:
    """One line in either form: a ``{"topic", "value"}`` wrapper or a bare event."""
    try:
        document = json.loads(line, parse_float=_exact_float)
    except ValueError as exc:  # includes UnicodeDecodeError
        return Refusal(line_no, "invalid_json", f"line {line_no} is not UTF-8 JSON: {exc}")
    if _is_wrapper(document):
        return _wrapped(document, line_no, now)
    return _checked(document, _route(document), line_no, now)


def _is_wrapper(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and "event_type" not in document
        and ("topic" in document or "value" in document)
    )


def _wrapped(document: dict[str, Any], line_no: int, now: datetime) -> Outgoing | Refusal:
    topic = document.get("topic")
    if topic not in TOPIC_KINDS:
        return Refusal(
            line_no,
            "invalid_event",
            f'line {line_no}: "topic" must be "marketing" or "sales", got {json.dumps(topic)}',
        )
    if "value" not in document:
        return Refusal(line_no, "invalid_event", f'line {line_no}: the wrapper has no "value"')
    return _checked(document["value"], topic, line_no, now)


def _route(value: Any) -> str:
    event_type = value.get("event_type") if isinstance(value, dict) else None
    # An unknown or missing type is left for classify to name; the topic does not matter then.
    return topic_kind_of(event_type) if event_type in EVENT_TYPES else "marketing"


def _checked(value: Any, topic_kind: str, line_no: int, now: datetime) -> Outgoing | Refusal:
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    verdict = classify(raw, topic_kind, now)
    if isinstance(verdict, Rejection):
        return Refusal(line_no, verdict.reason, f"line {line_no}: {verdict.error}")
    return Outgoing(line_no, topic_kind, verdict.lead_id.encode(), raw)


def _exact_float(text: str) -> float | str:
    """A JSON number as float, or kept as its text when a float would change its value.

    Amounts may carry up to 18 digits; re-serializing such a float would silently alter money,
    while the contract accepts amounts as strings too.
    """
    number = float(text)
    return number if Decimal(repr(number)) == Decimal(text) else text
