"""Business-calendar arithmetic: the worked examples, China's adjusted workdays, DST days,
the library's holidays with a company's overrides, the loud check for missing years, and
hypothesis properties checked against a brute-force minute-by-minute reference."""

from __future__ import annotations

import copy
import math
import pickle
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache, cached_property
from itertools import accumulate, takewhile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holiday_library
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from leadloop.calendar import (
    DEFAULT_TEAM,
    BusinessCalendar,
    CalendarSet,
    Interval,
    Weekday,
    _spans,
    _walk_due_at,
    business_seconds_between,
    due_at,
    is_working,
    next_working_instant,
    working_day_start,
)

CONFIG = Path(__file__).resolve().parents[2] / "config" / "calendars.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)
WEEKDAYS = [d.value for d in Weekday]
FAST = settings(max_examples=120, deadline=None)


def calendars() -> CalendarSet:
    return CalendarSet.model_validate(yaml.safe_load(CONFIG.read_text(encoding="utf-8")))


CN = calendars().calendars["cn-default"]
US = calendars().calendars["us-default"]


def every_day(*intervals: str, tz: str = "America/New_York") -> BusinessCalendar:
    return BusinessCalendar(timezone=tz, weekly={d: list(intervals) for d in WEEKDAYS})


def local(zone: ZoneInfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=zone)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# --- worked examples -----------------------------------------------------------------------


def test_friday_1755_with_15_minutes_is_due_monday_0910() -> None:
    nine_to_six = BusinessCalendar(
        timezone="Asia/Shanghai", weekly={d: ["09:00-18:00"] for d in WEEKDAYS[:5]}
    )
    friday = local(SHANGHAI, 2025, 3, 7, 17, 55)
    due = due_at(friday, 15 * 60, nine_to_six)
    assert due == local(SHANGHAI, 2025, 3, 10, 9, 10)
    assert due.tzinfo is UTC
    assert business_seconds_between(friday, due, nine_to_six) == 900


def test_start_outside_hours_counts_from_the_next_working_instant() -> None:
    saturday = local(SHANGHAI, 2025, 3, 8, 11, 0)
    monday_nine = local(SHANGHAI, 2025, 3, 10, 9, 0)
    assert not is_working(saturday, CN)
    assert next_working_instant(saturday, CN) == monday_nine
    assert due_at(saturday, 0, CN) == monday_nine
    assert due_at(saturday, 3600, CN) == local(SHANGHAI, 2025, 3, 10, 10, 0)


def test_lunch_break_is_not_working_time() -> None:
    assert not is_working(local(SHANGHAI, 2025, 3, 10, 12, 30), CN)
    assert is_working(local(SHANGHAI, 2025, 3, 10, 13, 0), CN)
    assert not is_working(local(SHANGHAI, 2025, 3, 10, 18, 0), CN)  # half-open
    due = due_at(local(SHANGHAI, 2025, 3, 10, 11, 30), 3600, CN)
    assert due == local(SHANGHAI, 2025, 3, 10, 13, 30)


def test_a_limit_ending_with_the_day_is_due_at_the_end_of_the_day() -> None:
    due = due_at(local(SHANGHAI, 2025, 3, 7, 17, 45), 15 * 60, CN)
    assert due == local(SHANGHAI, 2025, 3, 7, 18, 0)


# --- China's holidays and make-up workdays ---------------------------------------------------


def test_lead_assigned_the_day_before_spring_festival_is_due_after_it() -> None:
    # Monday 27 January 2025, 17:00; 28 January to 4 February is the holiday.
    due = due_at(local(SHANGHAI, 2025, 1, 27, 17, 0), 2 * 3600, CN)
    assert due == local(SHANGHAI, 2025, 2, 5, 10, 0)
    for day in range(28, 32):
        assert not is_working(local(SHANGHAI, 2025, 1, day, 10, 0), CN)


def test_sunday_make_up_workday_counts() -> None:
    saturday_night = local(SHANGHAI, 2025, 1, 25, 20, 0)
    assert is_working(local(SHANGHAI, 2025, 1, 26, 10, 0), CN)  # a Sunday
    assert due_at(saturday_night, 30 * 60, CN) == local(SHANGHAI, 2025, 1, 26, 9, 30)
    # it works Monday's hours, lunch break included
    assert not is_working(local(SHANGHAI, 2025, 1, 26, 12, 15), CN)


def test_saturday_make_up_workday_after_spring_festival() -> None:
    friday = local(SHANGHAI, 2025, 2, 7, 17, 30)
    assert due_at(friday, 3600, CN) == local(SHANGHAI, 2025, 2, 8, 9, 30)
    assert business_seconds_between(friday, local(SHANGHAI, 2025, 2, 10, 9, 0), CN) == (
        30 * 60 + 8 * 3600
    )


def test_national_day_and_its_make_up_days() -> None:
    assert due_at(local(SHANGHAI, 2025, 9, 27, 12, 0), 3600, CN) == local(
        SHANGHAI, 2025, 9, 28, 10, 0
    )
    eve = local(SHANGHAI, 2025, 9, 30, 17, 0)
    assert due_at(eve, 2 * 3600, CN) == local(SHANGHAI, 2025, 10, 9, 10, 0)
    assert due_at(local(SHANGHAI, 2025, 10, 10, 17, 0), 2 * 3600, CN) == local(
        SHANGHAI, 2025, 10, 11, 10, 0
    )
    # 1 h on the 30th, the 9th and 10th, 8 h on Saturday the 11th (a make-up day)
    to_monday = business_seconds_between(eve, local(SHANGHAI, 2025, 10, 13, 0, 0), CN)
    assert to_monday == (1 + 8 + 8 + 8) * 3600


# --- daylight saving time in New York --------------------------------------------------------


def test_office_hours_across_spring_forward() -> None:
    friday = local(NEW_YORK, 2025, 3, 7, 16, 0)  # EST
    due = due_at(friday, 2 * 3600, US)
    assert due == local(NEW_YORK, 2025, 3, 10, 10, 0) == utc(2025, 3, 10, 14, 0)  # EDT
    assert business_seconds_between(local(NEW_YORK, 2025, 3, 7, 9, 0), due, US) == 9 * 3600


def test_office_hours_across_fall_back() -> None:
    friday = local(NEW_YORK, 2025, 10, 31, 16, 0)  # EDT
    due = due_at(friday, 2 * 3600, US)
    assert due == local(NEW_YORK, 2025, 11, 3, 10, 0) == utc(2025, 11, 3, 15, 0)  # EST


def test_round_the_clock_counts_23_and_25_hour_days() -> None:
    always = every_day("00:00-24:00")
    assert (
        business_seconds_between(local(NEW_YORK, 2025, 3, 9), local(NEW_YORK, 2025, 3, 10), always)
        == 23 * 3600
    )
    assert (
        business_seconds_between(local(NEW_YORK, 2025, 11, 2), local(NEW_YORK, 2025, 11, 3), always)
        == 25 * 3600
    )
    # elapsed time, not wall time: aware arithmetic in a ZoneInfo zone would add wall time
    start = local(NEW_YORK, 2025, 3, 8, 12, 34, 56).astimezone(UTC)
    assert due_at(start, 86_400.25, always) == start + timedelta(seconds=86_400.25)


def test_a_wall_time_in_the_spring_gap_is_the_transition_instant() -> None:
    # 9 March 2025: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
    night = every_day("01:00-03:00", "03:30-04:00")
    day = (local(NEW_YORK, 2025, 3, 9), local(NEW_YORK, 2025, 3, 10))
    assert business_seconds_between(*day, night) == 1.5 * 3600
    in_gap = every_day("02:30-04:00")
    assert next_working_instant(day[0], in_gap) == utc(2025, 3, 9, 7, 0)
    assert business_seconds_between(*day, in_gap) == 3600
    ends_in_gap = every_day("01:00-02:30")
    assert due_at(day[0], 3600, ends_in_gap) == utc(2025, 3, 9, 7, 0)
    assert not is_working(utc(2025, 3, 9, 7, 0), ends_in_gap)


def test_wall_times_repeated_by_the_fall_fold_count_twice() -> None:
    # 2 November 2025: 02:00 EDT falls back to 01:00 EST at 06:00 UTC.
    day = (local(NEW_YORK, 2025, 11, 2), local(NEW_YORK, 2025, 11, 3))
    assert business_seconds_between(*day, every_day("01:00-03:00")) == 3 * 3600
    ends_in_fold = every_day("00:30-01:30")  # 04:30-05:30 UTC and again 06:00-06:30 UTC
    assert business_seconds_between(*day, ends_in_fold) == 1.5 * 3600
    assert is_working(utc(2025, 11, 2, 5, 15), ends_in_fold)
    assert not is_working(utc(2025, 11, 2, 5, 45), ends_in_fold)
    assert is_working(utc(2025, 11, 2, 6, 15), ends_in_fold)
    assert due_at(utc(2025, 11, 2, 4, 30), 90 * 60, ends_in_fold) == utc(2025, 11, 2, 6, 30)


def test_a_year_of_new_york_office_hours() -> None:
    start, end = local(NEW_YORK, 2025, 1, 1), local(NEW_YORK, 2026, 1, 1)
    working_days = [
        start.date() + timedelta(days=n)
        for n in range(365)
        if (start.date() + timedelta(days=n)).weekday() < 5
    ]
    # The eleven federal holidays of 2025 all fall on weekdays.
    hours = 8 * (len(working_days) - 11) - 4  # Christmas Eve is a short day
    assert hours == 1996
    assert business_seconds_between(start, end, US) == hours * 3600
    assert due_at(start, hours * 3600, US) == local(NEW_YORK, 2025, 12, 31, 17, 0)
    decade = due_at(start, 10 * hours * 3600, US)  # O(days): ~3,650 days, milliseconds
    assert business_seconds_between(start, decade, US) == 10 * hours * 3600


# --- configuration ---------------------------------------------------------------------------


def test_example_config_loads_and_maps_teams() -> None:
    cals = calendars()
    assert cals.for_team("team-cn") == CN
    assert cals.for_team("team-global") == US
    assert cals.for_team("someone-else") == cals.calendars["always"]
    assert CN.hours_on(date(2025, 2, 4)) == ()  # Spring Festival, from the library
    assert CN.hours_on(date(2025, 2, 8)) == CN.hours_on(date(2025, 2, 10))
    assert US.hours_on(date(2025, 12, 24)) == (Interval(9 * 3600, 13 * 3600),)


@pytest.mark.parametrize("mode", ["python", "json"])
def test_calendar_round_trips_through_its_dump(mode: Any) -> None:
    assert BusinessCalendar.model_validate(CN.model_dump(mode=mode)) == CN
    assert BusinessCalendar.model_validate(US.model_dump(mode=mode)) == US


def test_intervals_may_have_seconds_and_end_at_midnight() -> None:
    cal = every_day("09:00:30-09:01", "23:00-24:00", tz="UTC")
    assert cal.hours_on(date(2025, 1, 1)) == (Interval(32_430, 32_460), Interval(82_800, 86_400))
    assert business_seconds_between(utc(2025, 1, 1), utc(2025, 1, 2), cal) == 30 + 3600


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weekly": {"monday": ["09:00-12:00", "11:00-13:00"]}}, "overlap"),
        ({"weekly": {"monday": ["12:00-09:00"]}}, "start before it ends"),
        ({"weekly": {"monday": ["09:60-10:00"]}}, "not a time of day"),
        ({"weekly": {"monday": ["24:30-24:45"]}}, "not a time of day"),
        ({"weekly": {"monday": [780]}}, "expected a string"),  # YAML's 13:00
        ({"weekly": {}}, "weekly hours are empty"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"holidays": ["2025-01-26"], "workdays": {"2025-01-26": "monday"}}, "both holiday"),
        ({"workdays": {"2025-01-26": "sunday"}}, "has no hours"),
        ({"workdays": {"2025-01-26": []}}, "at least 1"),
        ({"holidays": ["2025-02-04..2025-01-28"]}, "must not end before"),
        ({"weekdays": {}}, "Extra inputs"),
        ({"holidays": {"extra": ["2025-01-26"]}, "workdays": {"2025-01-26": "monday"}}, "both"),
        ({"holidays": {"country": "ZZ"}}, "no country 'ZZ'"),
        ({"holidays": {"country": "cn"}}, "should match pattern"),
        ({"holidays": {"country": "US", "subdiv": "XX"}}, "does not have subdivision"),
        ({"holidays": {"country": "CN", "remove": ["2026-03-02"]}}, "neither a public holiday"),
        ({"holidays": {"remove": ["2026-10-01"]}}, "need a country"),
        ({"holidays": {"country": "CN", "make_up_as": "sunday"}}, "which has no hours"),
        ({"holidays": {"country": "CN", "years": [2026]}}, "Extra inputs"),
    ],
)
def test_invalid_calendars_are_refused(change: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"timezone": "Asia/Shanghai", "weekly": {"monday": ["09:00-18:00"]}}
    fields.update(change)
    with pytest.raises(ValidationError, match=message):
        BusinessCalendar.model_validate(fields)


def test_calendar_set_refuses_unknown_calendar_ids() -> None:
    with pytest.raises(ValidationError, match="unknown calendars: nope"):
        CalendarSet.model_validate(
            {"calendars": {"cn": CN}, "default": "cn", "teams": {"t": "nope"}}
        )


def test_naive_times_and_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        due_at(datetime(2025, 3, 7, 9, 0), 60, CN)  # naive on purpose
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="finite and not negative"):
            due_at(utc(2025, 3, 7), bad, CN)


# --- the holiday library, a company's overrides, missing years ------------------------------

OFFICE = {d: ["09:00-12:00", "13:00-18:00"] for d in WEEKDAYS[:5]}
DAY = (Interval(9 * 3600, 12 * 3600), Interval(13 * 3600, 18 * 3600))


def cn_office(**holidays: Any) -> BusinessCalendar:
    return BusinessCalendar.model_validate(
        {"timezone": "Asia/Shanghai", "weekly": OFFICE, "holidays": {"country": "CN", **holidays}}
    )


def test_the_hand_typed_list_is_still_read_as_the_companys_own_days_off() -> None:
    legacy = BusinessCalendar.model_validate(
        {"timezone": "Asia/Shanghai", "weekly": OFFICE, "holidays": ["2026-03-02..2026-03-03"]}
    )
    assert legacy.holidays.country is None
    assert legacy.holidays.extra == {date(2026, 3, 2), date(2026, 3, 3)}
    assert legacy.hours_on(date(2026, 3, 3)) == ()
    assert legacy.hours_on(date(2026, 10, 1)) == DAY  # no library: National Day works


def test_a_company_overrides_the_library() -> None:
    cal = cn_office(extra=["2026-12-31"], remove=["2026-10-07", "2026-10-10"])
    cal = cal.model_copy(update={})  # copies keep the derived day rule
    assert cal.hours_on(date(2026, 12, 31)) == ()  # its own day off
    assert cal.hours_on(date(2026, 10, 6)) == ()  # National Day, from the library
    assert cal.hours_on(date(2026, 10, 7)) == DAY  # a public holiday it works
    assert cal.hours_on(date(2026, 10, 10)) == ()  # a make-up Saturday it takes off
    assert cal.hours_on(date(2026, 9, 20)) == DAY  # the other make-up day stays
    short = BusinessCalendar.model_validate(
        {
            **cal.model_dump(),
            "workdays": {"2026-10-08": ["09:00-12:00"], "2026-10-03": "friday"},
        }
    )
    assert short.hours_on(date(2026, 10, 8)) == (Interval(9 * 3600, 12 * 3600),)  # short day
    assert short.hours_on(date(2026, 10, 3)) == DAY  # its own make-up day, on a holiday


def test_make_up_days_work_the_hours_of_the_weekday_named() -> None:
    cal = BusinessCalendar.model_validate(
        {
            "timezone": "Asia/Shanghai",
            "weekly": {**OFFICE, "friday": ["09:00-15:00"]},
            "holidays": {"country": "CN", "make_up_as": "friday"},
        }
    )
    assert cal.hours_on(date(2026, 2, 14)) == (Interval(9 * 3600, 15 * 3600),)


def test_looking_up_a_new_year_is_computation_only() -> None:
    """The library's country module and translations are read while validating; the
    days of a year nobody asked about yet come without touching a file."""
    import sys

    opened: list[object] = []
    armed = [True]

    def audit(event: str, args: tuple[object, ...]) -> None:
        if armed[0] and event in ("open", "os.listdir", "os.scandir", "import"):
            opened.append((event, args[0] if args else None))

    cal = cn_office()
    sys.addaudithook(audit)  # cannot be removed: disarmed below
    try:
        assert cal.hours_on(date(2041, 2, 1)) == ()  # Spring Festival 2041
        assert is_working(local(SHANGHAI, 2041, 2, 11, 10), cal)
    finally:
        armed[0] = False
    assert opened == []


def config_with(calendar: dict[str, Any]) -> CalendarSet:
    return CalendarSet.model_validate(
        {
            "calendars": {"typed": calendar, "always": {"timezone": "UTC", "weekly": OFFICE}},
            "default": "always",
            "teams": {"team-a": "typed", "team-b": "always"},
        }
    )


def test_a_hand_typed_calendar_of_past_years_is_reported_missing() -> None:
    cals = config_with(
        {"timezone": "Asia/Shanghai", "weekly": OFFICE, "holidays": ["2025-10-01..2025-10-08"]}
    )
    assert cals.missing_holiday_years(utc(2025, 6, 1)) == {}
    assert cals.missing_holiday_years(utc(2026, 6, 1)) == {"team-a": [2026]}
    # the year is the calendar's own: Shanghai is in 2026 eight hours before UTC
    assert cals.missing_holiday_years(utc(2025, 12, 31, 17)) == {"team-a": [2026]}
    assert cals.missing_holiday_years(utc(2025, 12, 31, 15)) == {}


def test_a_library_country_without_the_years_notice_is_reported_missing() -> None:
    cals = config_with(
        {"timezone": "Asia/Shanghai", "weekly": OFFICE, "holidays": {"country": "CN"}}
    )
    assert cals.missing_holiday_years(utc(2026, 6, 1)) == {}
    # python-holidays 0.109 carries the State Council's notices up to 2026 only; 2027
    # would be the statutory days without the year's arrangement.
    assert cals.missing_holiday_years(utc(2027, 6, 1)) == {"team-a": [2027]}
    # looking ahead: in December the coming year is already due
    assert cals.missing_holiday_years(utc(2026, 12, 7), timedelta(days=30)) == {"team-a": [2027]}
    # the company typed 2027's days off itself while waiting for the library
    typed = config_with(
        {
            "timezone": "Asia/Shanghai",
            "weekly": OFFICE,
            "holidays": {"country": "CN", "extra": ["2027-02-05..2027-02-11"]},
        }
    )
    assert typed.missing_holiday_years(utc(2027, 6, 1)) == {}


def test_rule_based_countries_and_calendars_without_days_off_lack_nothing() -> None:
    us = config_with(
        {"timezone": "America/New_York", "weekly": OFFICE, "holidays": {"country": "US"}}
    )
    assert us.missing_holiday_years(utc(2031, 6, 1)) == {}
    assert not calendars().calendars["always"].holidays  # round the clock: no days off


def test_the_default_calendar_is_reported_for_the_unlisted_teams() -> None:
    cals = CalendarSet.model_validate(
        {
            "calendars": {"old": {"timezone": "UTC", "weekly": OFFICE, "holidays": ["2024-01-01"]}},
            "default": "old",
        }
    )
    assert cals.missing_holiday_years(utc(2026, 1, 2)) == {DEFAULT_TEAM: [2026]}


def test_the_shipped_calendars_know_2025_and_2026() -> None:
    for year in (2025, 2026):
        assert calendars().missing_holiday_years(utc(year, 7, 1)) == {}


# --- brute force: minute by minute ---------------------------------------------------------


@cache
def library_year(country: str, year: int) -> holiday_library.HolidayBase:
    return holiday_library.country_holidays(country, years=year)


def reference_hours(cal: BusinessCalendar, day: date) -> tuple[Interval, ...]:
    """The day rule re-derived from the calendar's fields and python-holidays itself,
    independently of the module."""
    weekday_hours: tuple[Interval, ...] = getattr(cal.weekly, WEEKDAYS[day.weekday()])
    if day in cal.workdays:
        hours = cal.workdays[day]
        return getattr(cal.weekly, hours.value) if isinstance(hours, Weekday) else hours
    if day in cal.holidays.extra:
        return ()
    if cal.holidays.country is not None and day not in cal.holidays.remove:
        library = library_year(cal.holidays.country, day.year)
        if day in library:
            return ()
        if day in library.weekend_workdays:
            make_up: tuple[Interval, ...] = getattr(cal.weekly, cal.holidays.make_up_as.value)
            return make_up
    return weekday_hours


@dataclass(frozen=True)
class Window:
    """Starts drawn from ``[first, last)`` (UTC dates); the truth table runs to ``until``."""

    name: str
    cal: BusinessCalendar = field(repr=False)
    first: date
    last: date
    until: date
    max_minutes: int = 3 * 8 * 60  # the largest limit drawn, in business minutes

    @property
    def origin(self) -> datetime:
        return datetime.combine(self.first - timedelta(days=1), datetime.min.time(), UTC)

    @property
    def start_minutes(self) -> tuple[int, int]:
        return 1440, 1440 * ((self.last - self.first).days + 1) - 1

    @property
    def size(self) -> int:
        """Minutes in the truth table."""
        return 1440 * ((self.until - self.first).days + 1)

    @cached_property
    def working(self) -> list[bool]:
        """Walk every minute in UTC: is its local wall time inside a working interval?"""
        zone = ZoneInfo(self.cal.timezone)
        flags = []
        for i in range(self.size):
            wall = (self.origin + i * MINUTE).astimezone(zone)
            second = wall.hour * 3600 + wall.minute * 60
            hours = reference_hours(self.cal, wall.date())
            flags.append(any(a <= second < b for a, b in hours))
        return flags

    @cached_property
    def prefix(self) -> list[int]:
        return list(accumulate(map(int, self.working), initial=0))

    def at(self, minute: int) -> datetime:
        return self.origin + minute * MINUTE

    def due(self, minute: int, n: int) -> datetime:
        """End of the n-th working minute from ``minute`` on (n == 0: the first one's start)."""
        if n == 0:
            found = bisect_right(self.prefix, self.prefix[minute], lo=minute) - 1
        else:
            found = bisect_left(self.prefix, self.prefix[minute] + n, lo=minute)
        assert found < len(self.working), f"{self.name}: truth table too short"
        return self.at(found)

    def count(self, a: int, b: int) -> int:
        assert b <= self.size, f"{self.name}: truth table too short"
        return self.prefix[b] - self.prefix[a]


NIGHT_NY = every_day("00:30-01:30", "01:45-02:30", "02:40-03:10", "22:00-24:00")
# St John's (2010) switched at 00:01, so its fold crossed midnight: the first 00:00-00:01
# of 7 November came before the repeated 23:01-24:00 of 6 November.
ST_JOHNS = every_day("00:00-00:45", "12:00-12:30", "23:15-24:00", tz="America/St_Johns")
WINDOWS = [
    Window("cn spring festival", CN, date(2025, 1, 13), date(2025, 2, 17), date(2025, 3, 1)),
    Window("cn national day", CN, date(2025, 9, 15), date(2025, 10, 20), date(2025, 11, 1)),
    Window("cn 2026 spring festival", CN, date(2026, 2, 9), date(2026, 3, 2), date(2026, 3, 12)),
    Window("us spring forward", US, date(2025, 3, 3), date(2025, 3, 17), date(2025, 3, 26)),
    Window("us autumn", US, date(2025, 10, 27), date(2025, 12, 29), date(2026, 1, 10)),
    Window("ny nights, gap", NIGHT_NY, date(2025, 3, 6), date(2025, 3, 12), date(2025, 3, 18), 600),
    Window(
        "ny nights, fold", NIGHT_NY, date(2025, 10, 30), date(2025, 11, 5), date(2025, 11, 11), 600
    ),
    Window("st john's gap", ST_JOHNS, date(2010, 3, 11), date(2010, 3, 17), date(2010, 3, 23), 360),
    Window(
        "st john's fold", ST_JOHNS, date(2010, 11, 4), date(2010, 11, 10), date(2010, 11, 16), 360
    ),
]


@st.composite
def minute_cases(draw: st.DrawFn) -> tuple[Window, int, int]:
    """A window, a start minute in it, and a limit in business minutes."""
    window = draw(st.sampled_from(WINDOWS))
    minute = draw(st.integers(*window.start_minutes))
    return window, minute, draw(st.integers(0, window.max_minutes))


@st.composite
def instants(draw: st.DrawFn) -> tuple[Window, datetime, datetime]:
    """Two instants of a window at microsecond resolution, in order."""
    window = draw(st.sampled_from(WINDOWS))
    lo, hi = window.start_minutes
    a, b = sorted(draw(st.integers(lo * 60_000_000, hi * 60_000_000)) for _ in range(2))
    return (
        window,
        window.origin + timedelta(microseconds=a),
        window.origin + timedelta(microseconds=b),
    )


#: Limits in whole microseconds up to three working days (exactly representable).
limits = st.integers(0, 3 * 8 * 3600 * 10**6).map(lambda us: us / 10**6)


@FAST
@given(minute_cases())
def test_due_at_matches_minute_by_minute(case: tuple[Window, int, int]) -> None:
    window, minute, n = case
    assert due_at(window.at(minute), 60 * n, window.cal) == window.due(minute, n)


@FAST
@given(minute_cases(), st.integers(0, 20 * 1440))
def test_business_seconds_between_matches_minute_by_minute(
    case: tuple[Window, int, int], span: int
) -> None:
    window, a, _ = case
    b = min(a + span, window.size)
    expected = 60 * window.count(a, b)
    assert business_seconds_between(window.at(a), window.at(b), window.cal) == expected
    assert business_seconds_between(window.at(b), window.at(a), window.cal) == -expected


@FAST
@given(minute_cases(), st.integers(0, 60 * 10**6 - 1))
def test_is_working_and_next_working_instant_match_minute_by_minute(
    case: tuple[Window, int, int], micros: int
) -> None:
    window, minute, _ = case
    t = window.at(minute) + timedelta(microseconds=micros)
    working = window.working[minute]
    assert is_working(t, window.cal) is working
    expected = t if working else window.due(minute + 1, 0)
    assert next_working_instant(t, window.cal) == expected


@FAST
@given(instants(), limits)
def test_due_at_is_monotonic_in_start(pair: tuple[Window, datetime, datetime], s: float) -> None:
    window, a, b = pair
    assert due_at(a, s, window.cal) <= due_at(b, s, window.cal)


@FAST
@given(instants(), limits, limits)
def test_due_at_is_monotonic_in_the_limit(
    pair: tuple[Window, datetime, datetime], s: float, t: float
) -> None:
    window, start, _ = pair
    s, t = sorted((s, t))
    assert due_at(start, s, window.cal) <= due_at(start, t, window.cal)


@FAST
@given(instants(), limits)
def test_business_seconds_between_inverts_due_at(
    pair: tuple[Window, datetime, datetime], s: float
) -> None:
    window, start, _ = pair
    assert business_seconds_between(start, due_at(start, s, window.cal), window.cal) == s


@FAST
@given(instants(), limits, limits.filter(lambda t: t > 0))
def test_zero_limit_and_chained_limits(
    pair: tuple[Window, datetime, datetime], s: float, t: float
) -> None:
    window, start, _ = pair
    assert due_at(start, 0, window.cal) == next_working_instant(start, window.cal)
    # a ladder step ``t`` after a deadline ``s`` is the deadline ``s + t``
    chained = due_at(due_at(start, s, window.cal), t, window.cal)
    assert chained == due_at(start, s + t, window.cal)


@FAST
@given(instants(), limits)
def test_round_the_clock_is_elapsed_time_even_across_dst(
    pair: tuple[Window, datetime, datetime], s: float
) -> None:
    _, start, _ = pair
    always = every_day("00:00-24:00", tz=pair[0].cal.timezone)
    assert due_at(start, s, always) == start + timedelta(seconds=s)


@settings(max_examples=300, deadline=None)
@given(instants(), limits)
def test_the_month_timelines_answer_as_the_walk_over_local_days(
    pair: tuple[Window, datetime, datetime], s: float
) -> None:
    """``due_at`` and friends read cached month timelines; the walk over local days
    that builds them gives the same answers, including limits that run into the next month,
    and calendars whose spans overlap (a fold across midnight) keep walking."""
    window, a, b = pair
    limit = timedelta(seconds=s)
    assert due_at(a, s, window.cal) == _walk_due_at(a, limit, window.cal)
    assert next_working_instant(a, window.cal) == next(_spans(a, window.cal))[0]
    walked = sum(
        (
            min(end, b) - begin
            for begin, end in takewhile(lambda x: x[0] < b, _spans(a, window.cal))
        ),
        timedelta(),
    )
    assert business_seconds_between(a, b, window.cal) == walked.total_seconds()


def test_calendars_with_timelines_still_compare_copy_and_pickle_as_values() -> None:
    fresh = calendars().calendars["cn-default"]
    due_at(utc(2026, 11, 3, 5), 900, CN)  # CN has built a timeline, fresh has none
    assert fresh == CN
    assert pickle.loads(pickle.dumps(CN)) == CN
    assert copy.deepcopy(CN) == CN


def test_working_day_start_counts_working_days_not_calendar_days() -> None:
    ny = ZoneInfo("America/New_York")
    # Friday afternoon + 2 working days: Tuesday's opening, the weekend skipped.
    friday = datetime(2026, 3, 6, 16, 0, tzinfo=ny)
    assert working_day_start(friday, 2, US) == datetime(2026, 3, 10, 9, 0, tzinfo=ny)
    # Thursday 2 July 2026 + 1: Friday 3 July is Independence Day observed, so Monday.
    thursday = datetime(2026, 7, 2, 10, 0, tzinfo=ny)
    assert working_day_start(thursday, 1, US) == datetime(2026, 7, 6, 9, 0, tzinfo=ny)
