"""Exchange rates into one reporting currency: loading a CSV, and converting won revenue.

A won deal converts at its currency's latest rate on or before the UTC day it was won (the
reporting currency itself at 1); a deal without such a rate stays apart, never converted.
"""

from __future__ import annotations

import bisect
import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, insert, inspect, select

from leadflow.schemas.errors import LeadflowError
from leadflow.sinks.models import FX_RATES

_CODE = re.compile(r"^[A-Z]{3}$")
HEADER = ("currency", "day", "rate")
# fx_rates.rate keeps 10 decimals; on SQLite it is an integer of 10**-10 units (int64).
MAX_RATE = Decimal(100_000_000)


@dataclass(frozen=True)
class Rate:
    currency: str
    day: date
    rate: Decimal


def parse_rates(path: Path) -> list[Rate]:
    """The rates of a CSV with the header currency,day,rate; any bad line is one sentence."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or tuple(cell.strip() for cell in rows[0]) != HEADER:
        raise LeadflowError(f"{path}: the first line must be the header {','.join(HEADER)}")
    return [_rate(path, number, row) for number, row in enumerate(rows[1:], 2) if any(row)]


def _rate(path: Path, number: int, row: list[str]) -> Rate:
    where = f"{path} line {number}"
    if len(row) != 3:
        raise LeadflowError(f"{where}: expected currency,day,rate; nothing was loaded")
    currency, day_text, rate_text = (cell.strip() for cell in row)
    if not _CODE.match(currency):
        raise LeadflowError(f"{where}: bad currency {currency!r}; nothing was loaded")
    try:
        day = date.fromisoformat(day_text)
        rate = Decimal(rate_text)
    except (ValueError, InvalidOperation):
        raise LeadflowError(f"{where}: bad day or rate; nothing was loaded") from None
    if not rate.is_finite() or rate <= 0 or rate >= MAX_RATE:
        raise LeadflowError(
            f"{where}: the rate must be above 0 and below {MAX_RATE:,}; nothing was loaded"
        )
    return Rate(currency, day, rate)


def load_rates(engine: Engine, rates: Iterable[Rate], to_currency: str) -> int:
    """Insert or replace the rates (all into ``to_currency``) in one transaction; their count."""
    to_currency = to_currency.upper()
    if not _CODE.match(to_currency):
        raise LeadflowError(f"bad reporting currency {to_currency!r}: three letters such as EUR")
    now = datetime.now(UTC)
    rows = [
        {"currency": r.currency, "day": r.day, "rate": r.rate, "to_currency": to_currency,
         "loaded_at": now}
        for r in rates
    ]  # fmt: skip
    with engine.begin() as conn:
        existing = conn.execute(select(FX_RATES.c.to_currency).distinct()).scalars().all()
        if existing and set(existing) != {to_currency}:
            raise LeadflowError(
                f"the store's rates are into {', '.join(existing)}, not {to_currency}:"
                " one reporting currency per store"
            )
        for row in rows:
            key = (FX_RATES.c.currency == row["currency"]) & (FX_RATES.c.day == row["day"])
            conn.execute(delete(FX_RATES).where(key))
        if rows:
            conn.execute(insert(FX_RATES), rows)
    return len(rows)


@dataclass(frozen=True)
class Converted:
    """Won revenue in the reporting currency, and what had no rate (by currency, unconverted)."""

    currency: str
    total: Decimal
    deals: int
    without_rate: Mapping[str, Decimal]


class RateBook:
    """The rates of one store, looked up by currency and day."""

    def __init__(self, conn: Connection) -> None:
        self.to_currency: str | None = None
        self._days: dict[str, list[date]] = {}
        self._rates: dict[str, list[Decimal]] = {}
        if not inspect(conn).has_table(FX_RATES.name):
            return
        f = FX_RATES.c
        query = select(f.currency, f.day, f.rate, f.to_currency).order_by(f.currency, f.day)
        for currency, day, rate, to_currency in conn.execute(query):
            self.to_currency = to_currency
            self._days.setdefault(currency, []).append(day)
            self._rates.setdefault(currency, []).append(Decimal(str(rate)))

    def rate(self, currency: str, day: date) -> Decimal | None:
        """The latest rate of ``currency`` on or before ``day``; 1 for the reporting currency."""
        if currency == self.to_currency:
            return Decimal(1)
        days = self._days.get(currency, [])
        index = bisect.bisect_right(days, day) - 1
        return self._rates[currency][index] if index >= 0 else None


def convert(book: RateBook, deals: Iterable[tuple[str, Decimal, date]]) -> Converted | None:
    """Won deals (currency, amount, won day) in the reporting currency; None without rates."""
    if book.to_currency is None:
        return None
    total, count = Decimal(0), 0
    apart: dict[str, Decimal] = {}
    for currency, amount, day in deals:
        rate = book.rate(currency, day)
        if rate is None:
            apart[currency] = apart.get(currency, Decimal(0)) + amount
        else:
            total += amount * rate
            count += 1
    cents = Decimal("0.01")
    return Converted(
        book.to_currency,
        total.quantize(cents),
        count,
        {c: v.quantize(cents) for c, v in sorted(apart.items())},
    )
