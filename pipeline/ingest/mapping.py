"""What the vendor presets share: mapped events, refusals naming a field, deterministic ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

UNMAPPED_STAGE = "unmapped_stage"
UNKNOWN_PAYLOAD = "unknown_payload"


@dataclass(frozen=True, slots=True)
class Refused:
    """A vendor payload the preset cannot turn into an event."""

    reason: str
    error: str


# An event as a JSON object, a refusal, or None for a stage mapped to nothing.
Mapped = dict[str, Any] | Refused | None


class PayloadError(Exception):
    """Raised inside a mapper; becomes a Refused with the reason unknown_payload."""


def event_id(vendor: str, *parts: object) -> str:
    """The same vendor change always gets the same id, so a retried webhook is a duplicate."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode("utf-8"))
    return f"{vendor}-{digest.hexdigest()[:40]}"


def text(record: dict[str, Any], name: str, where: str) -> str:
    """A required field as a non-empty string (numbers become their digits)."""
    value = record.get(name)
    if isinstance(value, bool) or value is None or value == "":
        raise PayloadError(f"{where}{name} is missing")
    if not isinstance(value, str | int):
        raise PayloadError(f"{where}{name} must be a string, got {type(value).__name__}")
    return str(value)


def optional(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    return None if value is None or value == "" or isinstance(value, bool) else str(value)


def instant(value: object, field: str) -> str:
    """An RFC 3339 UTC timestamp from epoch milliseconds or an ISO 8601 string with an offset."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000.0, UTC).isoformat()
    if isinstance(value, str) and value.strip().isdigit():
        return datetime.fromtimestamp(int(value) / 1000.0, UTC).isoformat()
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"{field} {value!r} is not a timestamp") from None
        if moment.tzinfo is None:
            raise PayloadError(f"{field} {value!r} has no UTC offset")
        return moment.astimezone(UTC).isoformat()
    raise PayloadError(f"{field} is missing or not a timestamp")


def unmapped(field: str, value: str, table: str) -> Refused:
    return Refused(UNMAPPED_STAGE, f"{field} {value!r} is not in the preset's {table}")


def channel(value: str | None, default: str) -> str:
    """A vendor source name as a leadflow source: PAID_SEARCH or 'Paid Search' -> paid_search."""
    if not value:
        return default
    return "_".join(value.strip().lower().replace("-", " ").split()) or default
