"""Business-time arithmetic: spans, DST, holidays, and properties against a per-instant oracle."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.agents.sla.calendar import Calendar, from_us, to_us
from leadflow.agents.sla.spans import DAY_US, MINUTE_US, WEEKDAYS, parse_span, union

HOUR = 3600
HOUR_US = 3_600_000_000
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")


def office(
    zone: str, spans: tuple[str, ...] = ("09:00-18:00",), holidays: tuple[str, ...] = ()
) -> Calendar:
    """Open Monday to Friday in ``spans``, closed on ``holidays``."""
    hours = {day: [parse_span(text) for text in spans] for day in WORKDAYS}
    return Calendar(zone, hours, [date.fromisoformat(text) for text in holidays])


def at(zone: ZoneInfo, year: int, month: int, day: int, *clock: int, fold: int = 0) -> datetime:
    """A local wall-clock time; ``clock`` is hour, minute, second, microsecond (any prefix)."""
    hour, minute, second, micro = (*clock, 0, 0, 0, 0)[:4]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone, fold=fold)


# -- spans -------------------------------------------------------------------------------------


def test_span_is_open_to_close_in_microseconds_of_the_day() -> None:
    assert parse_span("09:00-12:30") == (9 * HOUR_US, 12 * HOUR_US + 30 * MINUTE_US)
    assert parse_span("00:00-24:00") == (0, DAY_US)


@pytest.mark.parametrize(
    "text",
    [
        "9:00-12:00",
        "09:00-09:00",
        "18:00-09:00",
        "24:00-24:00",
        "09:60-10:00",
        "09:00-24:01",
        "25:00-26:00",
        "09:00 - 12:00",
        "0900-1200",
        "",
    ],
)
def test_bad_spans_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="span"):
        parse_span(text)


def test_union_merges_overlapping_touching_and_unordered_spans() -> None:
    assert union([(5, 9), (1, 3), (2, 4), (9, 10), (12, 13)]) == ((1, 4), (5, 10), (12, 13))


def test_overlapping_spans_count_once() -> None:
    spans = {"mon": [parse_span("13:00-18:00"), parse_span("09:00-14:00")]}
    calendar = Calendar("UTC", spans)
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    assert calendar.business_seconds(monday, monday + timedelta(days=1)) == 9 * HOUR


def test_a_calendar_open_less_than_a_minute_a_week_is_refused() -> None:
    with pytest.raises(ValueError, match="less than one minute a week"):
        Calendar("Europe/Paris", {"mon": []})


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        office("UTC").next_opening(datetime(2026, 3, 2, 9))


# -- plain weeks, holidays -----------------------------------------------------------------------


def test_friday_evening_clock_starts_monday_morning() -> None:
    paris = office("Europe/Paris")
    friday = at(PARIS, 2026, 3, 6, 18, 30)
    assert paris.next_opening(friday) == at(PARIS, 2026, 3, 9, 9)
    assert paris.add_business(friday, 4 * HOUR) == at(PARIS, 2026, 3, 9, 13)


def test_deadline_spends_the_rest_of_the_day_then_the_next_opening() -> None:
    paris = office("Europe/Paris", ("09:00-12:30", "13:30-18:00"))
    start = at(PARIS, 2026, 3, 6, 17, 0)  # a Friday
    assert paris.add_business(start, 2 * HOUR) == at(PARIS, 2026, 3, 9, 10)
    assert paris.add_business(at(PARIS, 2026, 3, 9, 12), HOUR) == at(PARIS, 2026, 3, 9, 14)


def test_a_deadline_that_uses_up_a_span_is_its_close() -> None:
    paris = office("Europe/Paris")
    assert paris.add_business(at(PARIS, 2026, 3, 9, 9), 9 * HOUR) == at(PARIS, 2026, 3, 9, 18)


def test_zero_seconds_is_the_next_opening() -> None:
    paris = office("Europe/Paris")
    assert paris.add_business(at(PARIS, 2026, 3, 7, 12), 0) == at(PARIS, 2026, 3, 9, 9)
    assert paris.add_business(at(PARIS, 2026, 3, 9, 11), 0) == at(PARIS, 2026, 3, 9, 11)


def test_holidays_are_closed_all_local_day() -> None:
    paris = office("Europe/Paris", holidays=("2026-12-25", "2026-12-28"))
    christmas = at(PARIS, 2026, 12, 25, 10)  # a Friday
    assert not paris.is_open(christmas)
    assert paris.next_opening(christmas) == at(PARIS, 2026, 12, 29, 9)
    assert paris.business_seconds(at(PARIS, 2026, 12, 24), at(PARIS, 2026, 12, 30)) == 18 * HOUR


def test_holiday_is_the_calendars_local_date_not_the_utc_one() -> None:
    tokyo = Calendar("Asia/Tokyo", {"fri": [parse_span("00:00-03:00")]}, [date(2027, 1, 1)])
    # 2027-01-01 00:30 in Tokyo is still 2026-12-31 in UTC: closed all the same.
    assert not tokyo.is_open(datetime(2026, 12, 31, 15, 30, tzinfo=UTC))
    assert tokyo.is_open(datetime(2027, 1, 7, 15, 30, tzinfo=UTC))


def test_business_seconds_is_zero_when_end_is_not_after_start() -> None:
    paris = office("Europe/Paris")
    monday = at(PARIS, 2026, 3, 9, 10)
    assert paris.business_seconds(monday, monday) == 0
    assert paris.business_seconds(monday, monday - timedelta(hours=1)) == 0


def test_microseconds_are_exact() -> None:
    paris = office("Europe/Paris")
    start = at(PARIS, 2026, 3, 9, 17, 59, 59, 999_999)
    assert paris.add_business(start, 0.000_002) == at(PARIS, 2026, 3, 10, 9, 0, 0, 1)
    assert paris.business_seconds(start, at(PARIS, 2026, 3, 10, 9, 0, 0, 1)) == 0.000_002


def test_a_calendar_open_one_hour_a_week() -> None:
    weekly = Calendar("America/New_York", {"wed": [parse_span("10:00-11:00")]})
    start = at(NEW_YORK, 2026, 3, 2, 12)  # a Monday
    assert weekly.add_business(start, 3 * HOUR) == at(NEW_YORK, 2026, 3, 18, 11)
    assert weekly.business_seconds(start, at(NEW_YORK, 2026, 3, 30)) == 4 * HOUR
    year = weekly.add_business(start, 52 * HOUR)
    assert year == at(NEW_YORK, 2027, 2, 24, 11)


# -- daylight saving ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Paris", date(2026, 3, 29), 23),
        ("Europe/Paris", date(2026, 10, 25), 25),
        ("America/New_York", date(2026, 3, 8), 23),
        ("America/New_York", date(2026, 11, 1), 25),
    ],
)
def test_a_day_open_around_the_clock_lasts_as_long_as_the_local_day(
    zone: str, day: date, hours: int
) -> None:
    sundays = Calendar(zone, {"sun": [parse_span("00:00-24:00")]})
    midnight = datetime.combine(day, datetime.min.time(), ZoneInfo(zone))
    after = datetime.combine(day + timedelta(days=1), datetime.min.time(), ZoneInfo(zone))
    assert sundays.business_seconds(midnight, after) == hours * HOUR


def test_spring_the_skipped_hour_never_occurs() -> None:
    night = Calendar("Europe/Paris", {"sun": [parse_span("01:00-04:00")]})
    start = at(PARIS, 2026, 3, 29, 1)  # 02:00-03:00 does not exist that night
    assert night.business_seconds(start, at(PARIS, 2026, 3, 29, 5)) == 2 * HOUR
    assert night.add_business(start, HOUR + 1) == at(PARIS, 2026, 3, 29, 3, 0, 1)
    inside_gap = Calendar("America/New_York", {"sun": [parse_span("02:00-03:00")]})
    sunday = at(NEW_YORK, 2026, 3, 8)
    assert inside_gap.next_opening(sunday) == at(NEW_YORK, 2026, 3, 15, 2)


def test_autumn_the_repeated_hour_is_open_both_times() -> None:
    night = Calendar("Europe/Paris", {"sun": [parse_span("02:00-03:00")]})
    start = at(PARIS, 2026, 10, 25)
    assert night.business_seconds(start, at(PARIS, 2026, 10, 25, 4)) == 2 * HOUR
    first, second = at(PARIS, 2026, 10, 25, 2, 30), at(PARIS, 2026, 10, 25, 2, 30, fold=1)
    assert night.is_open(first)
    assert night.is_open(second)
    # A repeated local time is two instants; compare instants, in UTC.
    assert night.add_business(start, 90 * 60) == second.astimezone(UTC)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)


def test_new_york_autumn_repeated_hour_counts_twice() -> None:
    early = Calendar("America/New_York", {"sun": [parse_span("00:30-01:30")]})
    day = at(NEW_YORK, 2026, 11, 1)
    # 00:30-01:00 once, then 01:00-01:30 in daylight time and again in standard time.
    assert early.business_seconds(day, day + timedelta(hours=4)) == 90 * 60
    deadline = early.add_business(day, 80 * 60)
    assert deadline == at(NEW_YORK, 2026, 11, 1, 1, 20, fold=1).astimezone(UTC)
    assert deadline == datetime(2026, 11, 1, 6, 20, tzinfo=UTC)


def test_business_hours_keep_local_time_across_the_change() -> None:
    paris = office("Europe/Paris")
    friday = at(PARIS, 2026, 3, 27, 17)  # the Sunday after switches to summer time
    deadline = paris.add_business(friday, 8 * HOUR)
    assert deadline == at(PARIS, 2026, 3, 30, 16)
    assert deadline == datetime(2026, 3, 30, 14, tzinfo=UTC)


def test_long_targets_skip_weeks_and_stay_exact() -> None:
    paris = office("Europe/Paris", holidays=("2026-12-25",))
    start = at(PARIS, 2026, 1, 5, 9)  # a Monday
    deadline = paris.add_business(start, 2000 * HOUR)
    assert paris.business_seconds(start, deadline) == 2000 * HOUR
    assert paris.is_open(deadline - timedelta(microseconds=1))


def test_many_deadlines_are_cheap() -> None:
    paris = office("Europe/Paris", ("09:00-12:30", "13:30-18:00"))
    base = to_us(at(PARIS, 2026, 1, 1))
    began = time.perf_counter()
    for index in range(20_000):
        start = base + index * 1_579_000_000  # ~26 minutes apart: a year of MQLs
        paris.business_us(start, paris.add_business_us(start, 4 * HOUR_US))
    assert time.perf_counter() - began < 10


# -- properties ------------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
START_US = to_us(datetime(2025, 1, 1, tzinfo=UTC))
END_US = to_us(datetime(2028, 1, 1, tzinfo=UTC))


@st.composite
def spans(draw: st.DrawFn) -> list[tuple[int, int]]:
    found = []
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(0, 24 * 60 - 1))
        end = draw(st.integers(start + 1, 24 * 60))
        found.append((start * MINUTE_US, end * MINUTE_US))
    return found


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    hours = {day: draw(spans()) for day in WEEKDAYS}
    if not any(hours.values()):
        hours["wed"] = [parse_span("10:00-11:00")]
    days = draw(st.lists(st.integers(0, 3 * 366), max_size=30))
    holidays = [date(2025, 1, 1) + timedelta(days=d) for d in days]
    return Calendar(draw(st.sampled_from(ZONES)), hours, holidays)


instants = st.integers(START_US, END_US)
durations = st.integers(0, 300 * HOUR_US) | st.integers(0, 3 * HOUR_US)


def oracle_open(calendar: Calendar, micros: int) -> bool:
    """The definition, instant by instant: local wall time in a span of a non-holiday date."""
    local = from_us(micros).astimezone(calendar.zone)
    if local.date() in calendar.holidays:
        return False
    wall = local.time()
    wall_us = ((wall.hour * 60 + wall.minute) * 60 + wall.second) * 1_000_000 + wall.microsecond
    return any(start <= wall_us < end for start, end in calendar.week[local.weekday()])


@settings(max_examples=300, deadline=None)
@given(calendars(), instants)
def test_is_open_matches_the_definition(calendar: Calendar, micros: int) -> None:
    assert calendar.is_open_us(micros) == oracle_open(calendar, micros)


@settings(max_examples=60, deadline=None)
@given(calendars(), instants, st.integers(1, 3 * 24 * 60))
def test_business_time_matches_a_minute_by_minute_count(
    calendar: Calendar, micros: int, minutes: int
) -> None:
    # Spans and these zones' offset changes fall on whole minutes: each minute is all in or out.
    start = micros - micros % MINUTE_US
    counted = sum(oracle_open(calendar, start + m * MINUTE_US) for m in range(minutes))
    assert calendar.business_us(start, start + minutes * MINUTE_US) == counted * MINUTE_US


@settings(max_examples=200, deadline=None)
@given(calendars(), instants, durations)
def test_adding_then_measuring_gives_back_the_target(
    calendar: Calendar, start: int, duration: int
) -> None:
    deadline = calendar.add_business_us(start, duration)
    assert calendar.business_us(start, deadline) == duration
    if duration:
        assert calendar.business_us(start, deadline - 1) == duration - 1  # the earliest instant


@settings(max_examples=200, deadline=None)
@given(calendars(), instants, instants, durations)
def test_deadline_is_monotonic_in_the_start(
    calendar: Calendar, first: int, second: int, duration: int
) -> None:
    early, late = sorted((first, second))
    assert calendar.add_business_us(early, duration) <= calendar.add_business_us(late, duration)


@settings(max_examples=200, deadline=None)
@given(calendars(), instants, durations.filter(bool))
def test_deadline_is_open_or_exactly_at_a_close(
    calendar: Calendar, start: int, duration: int
) -> None:
    deadline = calendar.add_business_us(start, duration)
    assert calendar.is_open_us(deadline - 1)
    assert deadline - 1 >= calendar.next_opening_us(start)


@settings(max_examples=200, deadline=None)
@given(calendars(), instants)
def test_next_opening_is_open_and_nothing_before_it_is(calendar: Calendar, start: int) -> None:
    opening = calendar.next_opening_us(start)
    assert opening >= start
    assert calendar.is_open_us(opening)
    assert calendar.business_us(start, opening) == 0


@settings(max_examples=80, deadline=None)
@given(calendars(), instants, instants, instants)
def test_business_time_adds_up_over_consecutive_stretches(
    calendar: Calendar, a: int, b: int, c: int
) -> None:
    a, b, c = sorted((a, b, c))
    assert calendar.business_us(a, c) == calendar.business_us(a, b) + calendar.business_us(b, c)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZONES), instants, durations, instants)
def test_a_24x7_calendar_is_the_wall_clock(zone: str, start: int, duration: int, end: int) -> None:
    always = Calendar(zone, {day: [parse_span("00:00-24:00")] for day in WEEKDAYS})
    assert always.add_business_us(start, duration) == start + duration
    assert always.business_us(start, end) == max(0, end - start)
