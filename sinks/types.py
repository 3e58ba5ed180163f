"""Column types that keep times in UTC and numbers exact on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC and always read back as aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given where an aware one belongs")
        moment = value.astimezone(UTC)
        # SQLite has no time zones: store naive UTC text that date() and comparisons understand.
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite keeps an integer of up to 64 bits exactly; NUMERIC affinity turns any decimal text or
# float into a binary double.
_SQLITE_MAX_UNITS = 2**63 - 1


def to_units(value: Decimal | int | None, scale: int) -> int | None:
    """``value`` as an integer count of 10**-scale (cents at scale 2), rounded half away from
    zero as PostgreSQL NUMERIC rounds; ValueError when SQLite cannot hold it exactly."""
    if value is None:
        return None
    exact = value if isinstance(value, Decimal) else Decimal(value)
    if not exact.is_finite():
        raise ValueError(f"{value!r} is not a finite amount")
    units = int(exact.scaleb(scale).to_integral_value(ROUND_HALF_UP))
    if abs(units) > _SQLITE_MAX_UNITS:
        raise ValueError(f"{value} exceeds what SQLite stores exactly at {scale} decimals")
    return units


def from_units(value: Any, scale: int) -> Decimal | None:
    """The Decimal an integer count of 10**-scale stands for, with ``scale`` decimals."""
    if value is None:
        return None
    if isinstance(value, int):
        return Decimal(value).scaleb(-scale)
    # Not written by ExactNumeric (a REAL or text): its shortest decimal form, at the scale.
    return (Decimal(str(value)) / Decimal(10) ** scale).quantize(Decimal(1).scaleb(-scale))


class ExactNumeric(TypeDecorator[Decimal]):
    """NUMERIC(precision, scale) that never passes through a binary float.

    PostgreSQL stores it as NUMERIC. SQLite stores an integer count of 10**-scale (integer
    cents for money) in the NUMERIC column, so SUM over it adds integers exactly; every read
    turns the integer back into a Decimal.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale)
        self.scale = scale

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        scale = self.scale
        return lambda value: to_units(value, scale)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        scale = self.scale
        return lambda value: from_units(value, scale)
