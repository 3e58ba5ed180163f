"""Business time on a calendar: opening spans per local weekday, holidays, an IANA time zone.

An instant is open when its local wall-clock time lies in a span of its local date's weekday
and that date is no holiday. Local time is a function of the UTC instant, so a local time that
daylight saving skips is never open and one it repeats is open both times.

Arithmetic runs on integer microseconds since the epoch (UTC). The UTC time line is cut into
24-hour chunks; each chunk's open intervals are computed once and cached, and whole 7-chunk
weeks are measured and skipped at once, so cost grows with days, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from leadflow.agents.sla.spans import DAY_US, MINUTE_US, WEEKDAYS, Span, union

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH_WEEKDAY = 3  # 1970-01-01 is a Thursday (Monday is 0)
_ONE_US = timedelta(microseconds=1)
_HOUR_US = 3_600_000_000
_CACHE_LIMIT = 100_000

Interval = tuple[int, int]  # [start, end) in microseconds since the epoch


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exact."""
    if moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone")
    return (moment - EPOCH) // _ONE_US


def from_us(micros: int) -> datetime:
    """The UTC datetime of a microsecond timestamp, exact."""
    return EPOCH + timedelta(microseconds=micros)


class Calendar:
    """Opening hours in one time zone; every method is exact to the microsecond."""

    def __init__(
        self, timezone: str, hours: Mapping[str, Sequence[Span]], holidays: Iterable[date] = ()
    ) -> None:
        unknown = sorted(set(hours) - set(WEEKDAYS))
        if unknown:
            raise ValueError(f"unknown weekday {unknown[0]!r} (use {', '.join(WEEKDAYS)})")
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.week: tuple[tuple[Span, ...], ...] = tuple(union(hours.get(d, ())) for d in WEEKDAYS)
        self.holidays = frozenset(holidays)
        self._holiday_days = frozenset(d.toordinal() - _EPOCH_ORDINAL for d in self.holidays)
        if sum(end - start for day in self.week for start, end in day) < MINUTE_US:
            raise ValueError("open less than one minute a week")
        self._chunks: dict[int, tuple[Interval, ...]] = {}
        self._measures: dict[int, int] = {}
        self._weeks: dict[int, int] = {}

    # -- datetime interface ---------------------------------------------------------------

    def is_open(self, moment: datetime) -> bool:
        return self.is_open_us(to_us(moment))

    def next_opening(self, moment: datetime) -> datetime:
        """The first open instant at or after ``moment`` (``moment`` itself when open)."""
        return from_us(self.next_opening_us(to_us(moment)))

    def add_business(self, start: datetime, seconds: float) -> datetime:
        """The instant at which ``seconds`` of open time have passed since ``start``."""
        return from_us(self.add_business_us(to_us(start), round(seconds * 1_000_000)))

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Open time between ``start`` and ``end`` in seconds (0 when end <= start)."""
        return self.business_us(to_us(start), to_us(end)) / 1_000_000

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    # -- microsecond interface ------------------------------------------------------------

    def is_open_us(self, at: int) -> bool:
        return any(start <= at < end for start, end in self._chunk(at // DAY_US))

    def next_opening_us(self, at: int) -> int:
        # Terminates: every week has at least one minute of spans and holidays are finite.
        chunk = at // DAY_US
        while True:
            for start, end in self._chunk(chunk):
                if end > at:
                    return max(start, at)
            chunk += 1

    def add_business_us(self, start: int, duration: int) -> int:
        """The earliest instant by which ``duration`` µs of open time have passed since ``start``.

        With ``duration`` 0 that is the next opening; a deadline that uses up an open interval
        exactly is that interval's close.
        """
        if duration < 0:
            raise ValueError("a business duration is not negative")
        chunk, at, remaining = start // DAY_US, start, duration
        while True:
            if chunk % 7 == 0 and at == chunk * DAY_US:
                while remaining > (week := self._week_measure(chunk // 7)):
                    remaining -= week
                    chunk += 7
                at = chunk * DAY_US
            found, remaining = self._consume(chunk, at, remaining)
            if found is not None:
                return found
            chunk += 1
            at = chunk * DAY_US

    def business_us(self, start: int, end: int) -> int:
        """Open microseconds in [start, end); 0 when end <= start."""
        if end <= start:
            return 0
        first, last = start // DAY_US, (end - 1) // DAY_US
        if first == last:
            return self._clip(first, start, end)
        head = self._clip(first, start, (first + 1) * DAY_US)
        tail = self._clip(last, last * DAY_US, end)
        return head + self._measure_chunks(first + 1, last) + tail

    # -- chunks ---------------------------------------------------------------------------

    def _consume(self, chunk: int, at: int, remaining: int) -> tuple[int | None, int]:
        """Spend open time of ``chunk`` from ``at``: (the instant it runs out, or None; rest)."""
        if at == chunk * DAY_US and remaining > self._measure(chunk):
            return None, remaining - self._measure(chunk)
        for start, end in self._chunk(chunk):
            if end <= at:
                continue
            begin = max(start, at)
            if remaining <= end - begin:
                return begin + remaining, 0
            remaining -= end - begin
        return None, remaining

    def _clip(self, chunk: int, start: int, end: int) -> int:
        return sum(max(0, min(e, end) - max(s, start)) for s, e in self._chunk(chunk))

    def _measure_chunks(self, first: int, stop: int) -> int:
        """Open microseconds of chunks [first, stop)."""
        total, chunk = 0, first
        while chunk < stop and chunk % 7:
            total += self._measure(chunk)
            chunk += 1
        while chunk + 7 <= stop:
            total += self._week_measure(chunk // 7)
            chunk += 7
        while chunk < stop:
            total += self._measure(chunk)
            chunk += 1
        return total

    def _week_measure(self, week: int) -> int:
        if week not in self._weeks:
            _bound(self._weeks)
            self._weeks[week] = sum(self._measure(c) for c in range(week * 7, week * 7 + 7))
        return self._weeks[week]

    def _measure(self, chunk: int) -> int:
        if chunk not in self._measures:
            _bound(self._measures)
            self._measures[chunk] = sum(end - start for start, end in self._chunk(chunk))
        return self._measures[chunk]

    def _chunk(self, chunk: int) -> tuple[Interval, ...]:
        """Sorted disjoint open intervals within [chunk * DAY_US, (chunk + 1) * DAY_US)."""
        cached = self._chunks.get(chunk)
        if cached is None:
            _bound(self._chunks)
            low = chunk * DAY_US
            found: list[Interval] = []
            for start, end, offset in self._periods(low, low + DAY_US):
                found.extend(self._open_in_period(start, end, offset))
            cached = self._chunks[chunk] = union(found)
        return cached

    def _open_in_period(self, start: int, end: int, offset: int) -> list[Interval]:
        """Open intervals within [start, end), a stretch where the UTC offset is ``offset``."""
        found: list[Interval] = []
        for day in range((start + offset) // DAY_US, (end - 1 + offset) // DAY_US + 1):
            if day in self._holiday_days:
                continue
            midnight = day * DAY_US - offset  # the UTC instant local midnight would have
            for span_open, span_close in self.week[(day + _EPOCH_WEEKDAY) % 7]:
                low, high = max(start, midnight + span_open), min(end, midnight + span_close)
                if low < high:
                    found.append((low, high))
        return found

    def _periods(self, low: int, high: int) -> list[tuple[int, int, int]]:
        """[low, high) cut where the UTC offset changes: (start, end, offset in µs).

        Offsets are sampled hourly; zones change offset at most once between two samples.
        """
        points = [*range(low, high, _HOUR_US), high - 1]
        offsets = [self._offset(p) for p in points]
        periods: list[tuple[int, int, int]] = []
        begin, current = low, offsets[0]
        for index in range(1, len(points)):
            if offsets[index] != current:
                change = self._change(points[index - 1], points[index], offsets[index])
                periods.append((begin, change, current))
                begin, current = change, offsets[index]
        periods.append((begin, high, current))
        return periods

    def _change(self, before: int, after: int, new_offset: int) -> int:
        """The first instant in (before, after] whose offset is ``new_offset``."""
        while after - before > 1:
            middle = (before + after) // 2
            if self._offset(middle) == new_offset:
                after = middle
            else:
                before = middle
        return after

    def _offset(self, at: int) -> int:
        offset = from_us(at).astimezone(self.zone).utcoffset()
        assert offset is not None  # a ZoneInfo always has an offset
        return offset // _ONE_US


def _bound(cache: dict[int, int] | dict[int, tuple[Interval, ...]]) -> None:
    """Keep a cache bounded: past its limit it starts again empty."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
