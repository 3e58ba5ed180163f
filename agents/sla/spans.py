"""Opening-hour spans: ``"HH:MM-HH:MM"`` text to microseconds of the local day, and their union."""

from __future__ import annotations

import re
from collections.abc import Iterable

MINUTE_US = 60_000_000
DAY_US = 86_400_000_000
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Span = tuple[int, int]  # [open, close) in microseconds since local midnight

_SPAN = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")


def parse_span(text: str) -> Span:
    """The [open, close) of ``"HH:MM-HH:MM"``: open before close, close at most ``24:00``."""
    found = _SPAN.fullmatch(text)
    if found is None:
        raise ValueError(f"span {text!r} is not written HH:MM-HH:MM")
    open_h, open_m, close_h, close_m = (int(part) for part in found.groups())
    if open_h > 23 or open_m > 59 or close_m > 59 or close_h > 24 or (close_h, close_m) > (24, 0):
        raise ValueError(f"span {text!r} has a time outside 00:00-24:00")
    start = (open_h * 60 + open_m) * MINUTE_US
    end = (close_h * 60 + close_m) * MINUTE_US
    if start >= end:
        raise ValueError(
            f"span {text!r} closes before it opens (a span past midnight is two spans)"
        )
    return start, end


def union(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sorted, disjoint, non-touching spans covering exactly the union of ``spans``."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)
