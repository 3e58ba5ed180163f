"""The text forms a policy file uses: RFC 3339 instants with an offset and ISO dates."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

_INSTANT = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)
_DATE = re.compile(r"\d{4}-\d\d-\d\d")


def parse_instant(text: str) -> datetime:
    """An RFC 3339 instant with an offset (``Z`` or ``±HH:MM``), at most microsecond digits."""
    found = _INSTANT.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not an RFC 3339 instant such as 2026-01-01T00:00:00Z")
    year, month, day, hour, minute, second = (int(found[i]) for i in range(1, 7))
    micros = int((found[7] or "").ljust(6, "0"))
    zone = UTC
    if found[8] is None:
        if int(found[10]) > 23 or int(found[11]) > 59:
            raise ValueError(f"{text!r} has an offset beyond ±23:59")
        offset = timedelta(hours=int(found[10]), minutes=int(found[11]))
        zone = timezone(-offset if found[9] == "-" else offset)
    try:
        return datetime(year, month, day, hour, minute, second, micros, tzinfo=zone)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid date and time") from None


def parse_date(text: str) -> date:
    """An ISO date ``YYYY-MM-DD``."""
    if _DATE.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not an ISO date such as 2026-12-25")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid date") from None


def format_utc(moment: datetime) -> str:
    """``2026-03-09T09:00:00Z`` (microseconds shown when there are any)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
