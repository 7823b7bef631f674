"""Business calendars: how much working time lies between two instants, and when a limit runs out.

A calendar has a time zone, weekly working hours (per weekday, a list of local wall-time
intervals), ``holidays`` (a country's public holidays and make-up working days from the
python-holidays library, plus the company's own days off, minus library dates it does
not follow) and ``workdays`` (dates with working time whatever their weekday: the
company's own make-up working days, or a short day). SLA clocks count only working time:
``due_at(start, 900, calendar)`` is when 15 working minutes have passed after ``start``.

The module is pure: no clock reads, and no I/O beyond the stdlib's tz database and what
python-holidays reads (its country module and translations) while a calendar is being
validated. After that a year's public holidays are computed on first use, without I/O,
and kept (a few hundred bytes per country and year). Every instant in and out is an aware
``datetime``; results are in UTC. Arithmetic is exact to the microsecond (durations are
``timedelta``s inside). Each local date contributes at most a few UTC spans, computed
once and cached; a calendar keeps, per UTC month it is asked about, the spans of 62 days
with the working time up to each, so a due time is two binary searches (a limit that
runs past them walks the days, at O(days spanned)).

Daylight saving time. Working hours are local wall time, and an interval of date D
covers exactly the instants whose local wall time falls inside it on date D — the same
answer as looking at every minute's local time. So:

* a wall time skipped by a spring-forward gap counts as the transition instant: on a day
  that jumps from 02:00 to 03:00, ``02:30-04:00`` starts at 03:00 and lasts one hour,
  and ``01:00-02:30`` ends at 02:00 (local, before the jump);
* wall times repeated by a fall-back fold count both times: on a day that repeats
  01:00-02:00, ``01:00-03:00`` lasts three hours, and ``00:30-01:30`` covers 00:30-01:30
  plus the repeated 01:00-01:30 (two UTC spans).

Python's own ``fold=0`` reading is deliberately not used: it would move a time in the
gap forward by the length of the gap and count only the first pass through a fold.
Typical office hours never touch a transition (they happen at night), but calendars
with night shifts, or zones that switch at midnight, get the same exact answer.
Assumed of the tz database: offsets change at most once in any six hours.
"""

from __future__ import annotations

import heapq
import math
import re
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache, lru_cache
from itertools import pairwise
from typing import Annotated, Any, NamedTuple, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_library
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    field_validator,
    model_validator,
)

__all__ = [
    "DEFAULT_TEAM",
    "BusinessCalendar",
    "CalendarSet",
    "DayHours",
    "Holidays",
    "Interval",
    "Weekday",
    "WeeklyHours",
    "business_seconds_between",
    "due_at",
    "is_working",
    "next_working_instant",
    "working_day_start",
]

#: ``CalendarSet.missing_holiday_years`` reports the calendar of every team not listed
#: under ``teams`` (the ``default`` calendar) under this name.
DEFAULT_TEAM = "*"

_DAY_SECONDS = 86_400
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
#: Offset samples this far apart find every transition (tzdb never changes twice in 6 h).
_SAMPLE = timedelta(hours=6)

Span = tuple[datetime, datetime]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


class Interval(NamedTuple):
    """Working time within one local day: ``[start, end)`` in seconds after local midnight.

    ``end`` may be 86400 (24:00). Written as ``"09:00-12:00"`` or ``"09:00:30-12:00"``.
    """

    start: int
    end: int

    @property
    def label(self) -> str:
        return f"{_clock_label(self.start)}-{_clock_label(self.end)}"


_INTERVAL = re.compile(
    r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*-\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$"
)


def _clock_label(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def _seconds(h: str, m: str, s: str | None) -> int:
    hours, minutes, secs = int(h), int(m), int(s or 0)
    if minutes > 59 or secs > 59 or hours > 24 or (hours == 24 and minutes + secs):
        raise ValueError(f"{h}:{m}{':' + s if s else ''} is not a time of day (00:00 to 24:00)")
    return hours * 3600 + minutes * 60 + secs


def _parse_interval(value: object) -> Interval:
    if isinstance(value, Interval):
        start, end = value
    elif isinstance(value, str):
        match = _INTERVAL.match(value)
        if match is None:
            raise ValueError(f"{value!r}: expected a local interval like '09:00-12:00'")
        start, end = _seconds(*match.group(1, 2, 3)), _seconds(*match.group(4, 5, 6))
    else:
        # YAML 1.1 reads an unquoted 13:00 as the integer 780: refuse to guess.
        raise ValueError(f"{value!r}: expected a string like '09:00-12:00'")
    if not 0 <= start < end <= _DAY_SECONDS:
        raise ValueError(f"{value!r}: an interval must start before it ends, within one day")
    return Interval(start, end)


def _check_day(intervals: tuple[Interval, ...]) -> tuple[Interval, ...]:
    ordered = tuple(sorted(intervals))
    for before, after in pairwise(ordered):
        if after.start < before.end:
            raise ValueError(f"working intervals {before.label} and {after.label} overlap")
    return ordered


IntervalField = Annotated[
    Interval,
    PlainValidator(_parse_interval, json_schema_input_type=str),
    PlainSerializer(lambda i: i.label, return_type=str),
]
#: One day's working intervals, sorted and non-overlapping (touching is fine).
DayHours = Annotated[tuple[IntervalField, ...], AfterValidator(_check_day)]


class WeeklyHours(_Frozen):
    """Working intervals per weekday; a day left out has none."""

    monday: DayHours = ()
    tuesday: DayHours = ()
    wednesday: DayHours = ()
    thursday: DayHours = ()
    friday: DayHours = ()
    saturday: DayHours = ()
    sunday: DayHours = ()

    def on(self, weekday: Weekday | int) -> tuple[Interval, ...]:
        """The intervals of a weekday (a name, or 0 = Monday as in ``date.weekday()``)."""
        name = weekday if isinstance(weekday, Weekday) else list(Weekday)[weekday]
        hours: tuple[Interval, ...] = getattr(self, name.value)
        return hours


def _to_date(value: object) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"{value!r}: expected a date, not a date and time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value.strip())
    raise ValueError(f"{value!r}: expected a date like 2025-01-28")


def _expand_dates(value: object) -> object:
    """Accept dates and inclusive ranges ``"2025-01-28..2025-02-04"``."""
    if not isinstance(value, list | tuple | set | frozenset):
        return value
    days: set[date] = set()
    for item in value:
        if isinstance(item, str) and ".." in item:
            first, last = (_to_date(part) for part in item.split("..", 1))
            if last < first:
                raise ValueError(f"{item!r}: a date range must not end before it starts")
            days.update(first + timedelta(days=n) for n in range((last - first).days + 1))
        else:
            days.add(_to_date(item))
    return days


def _date_keys(value: object) -> object:
    if isinstance(value, Mapping):
        return {_to_date(k): v for k, v in value.items()}
    return value


DateSet = Annotated[frozenset[date], BeforeValidator(_expand_dates)]


class _PublicYear(NamedTuple):
    """One year of a country's public holidays, as python-holidays computes them."""

    days_off: frozenset[date]
    #: Weekend dates that are working days (China's 调休 make-up working days).
    make_up: frozenset[date]
    #: Whether the library has the year's official data. Countries whose days off are
    #: moved around weekends by a yearly notice (China's State Council) are only known
    #: for the years whose notice the library carries; later years get the statutory
    #: days alone, which is not the real arrangement. Rule-based countries (the US) are
    #: known for every year the library computes.
    official: bool


_library_lock = threading.Lock()


@cache
def _library(country: str, subdiv: str | None) -> holiday_library.HolidayBase:
    """The library's holiday table of a country, years added on demand.

    Built while a calendar is validated: this is where python-holidays imports the
    country's module and reads its translations. Adding a year later (``_public_year``)
    is computation only.
    """
    if country not in holiday_library.list_supported_countries():
        raise ValueError(f"python-holidays has no country {country!r}")
    try:
        return holiday_library.country_holidays(country, subdiv=subdiv, years=())
    except NotImplementedError as exc:  # an unknown subdivision
        raise ValueError(str(exc)) from exc


@lru_cache(maxsize=1024)
def _public_year(country: str, subdiv: str | None, year: int) -> _PublicYear:
    table = _library(country, subdiv)
    with _library_lock:  # the table grows in place: one year at a time
        table.get(date(year, 1, 1))  # expand=True: populates the whole year
        days_off = frozenset(d for d in table if d.year == year)
        make_up = frozenset(d for d in table.weekend_workdays if d.year == year)
    if table.start_year <= year <= table.end_year:
        if getattr(table, "has_substituted_holidays", False):
            notices: Mapping[int, object] = getattr(table, "special_public_holidays", {})
            official = year in notices
        else:
            official = True
    else:
        official = False
    return _PublicYear(days_off, make_up, official)


class Holidays(_Frozen):
    """A calendar's days off: a country's public holidays and the company's own.

    ``country`` (ISO 3166-1 alpha-2, optionally with a ``subdiv``) takes public holidays
    and make-up working days from python-holidays: China's State Council arrangement
    with its 调休 weekend working days, US federal holidays with their observed days
    (Saturday → Friday, Sunday → Monday). A make-up working day works the hours of
    ``make_up_as``. ``extra`` are the company's own days off; ``remove`` lists library
    dates the company does not follow (a public holiday it works with its weekday's
    hours, or a make-up day it takes off). Written in YAML either as this mapping or, as
    before the library, as a plain list of dates and ranges (then all of it is ``extra``).
    """

    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    subdiv: str | None = None
    make_up_as: Weekday = Weekday.MONDAY
    extra: DateSet = frozenset()
    remove: DateSet = frozenset()

    @model_validator(mode="after")
    def _known_to_the_library(self) -> Self:
        if self.country is None:
            if self.subdiv is not None or self.remove:
                raise ValueError("subdiv and remove need a country")
            return self
        _library(self.country, self.subdiv)  # fails fast on an unknown country
        for day in sorted(self.remove):
            year = _public_year(self.country, self.subdiv, day.year)
            if day not in year.days_off and day not in year.make_up:
                raise ValueError(
                    f"remove: {day} is neither a public holiday nor a make-up working day "
                    f"of {self.country}"
                )
        return self

    def __bool__(self) -> bool:
        """Whether there are any days off at all (a round-the-clock calendar has none)."""
        return self.country is not None or bool(self.extra)

    def known_for(self, year: int) -> bool:
        """Whether days off are known for ``year``: the library has the country's
        official data for it, or the company typed at least one day off in it."""
        if self.country is not None and _public_year(self.country, self.subdiv, year).official:
            return True
        return any(d.year == year for d in self.extra)


class _DayRule(NamedTuple):
    """A calendar's fields laid out for ``hours_on``, which runs for every day spanned
    (one private attribute: pydantic serves those through ``__getattr__``)."""

    week: tuple[tuple[Interval, ...], ...]
    dates: dict[date, tuple[Interval, ...]]
    country: str | None
    subdiv: str | None
    remove: frozenset[date]
    make_up: tuple[Interval, ...]

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        hours = self.dates.get(day)
        if hours is not None:
            return hours
        if self.country is not None and day not in self.remove:
            public = _public_year(self.country, self.subdiv, day.year)
            if day in public.days_off:
                return ()
            if day in public.make_up:
                return self.make_up
        return self.week[day.weekday()]


def _holidays_field(value: object) -> object:
    """A plain list of dates is the calendar format from before the library: ``extra``."""
    if isinstance(value, list | tuple | set | frozenset):
        return {"extra": value}
    return value


class BusinessCalendar(_Frozen):
    """A team's working time: time zone, weekly hours, holidays and make-up workdays.

    ``workdays`` maps a date to the hours it has instead of its weekday's: the name of a
    weekday whose hours it borrows (China's make-up Saturday "works as a Monday"), or an
    explicit interval list (a short day). A date may not be both one of the company's own
    days off (``holidays.extra``) and a workday. A date's hours are, in order: its
    ``workdays`` entry, none if it is an ``extra`` day off, the library's answer (a public
    holiday has none, a make-up day ``make_up_as``'s hours) unless the date is in
    ``remove``, and otherwise its weekday's.
    """

    #: IANA time zone name, e.g. "Asia/Shanghai".
    timezone: str
    weekly: WeeklyHours
    holidays: Annotated[Holidays, BeforeValidator(_holidays_field)] = Holidays()
    workdays: Annotated[
        dict[date, Weekday | Annotated[DayHours, Field(min_length=1)]],
        BeforeValidator(_date_keys),
    ] = Field(default_factory=dict)

    _days: _DayRule = PrivateAttr()
    _timelines: _Timelines = PrivateAttr(default_factory=lambda: _Timelines())

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not any(self.weekly.on(day) for day in Weekday):
            raise ValueError("weekly hours are empty: no limit would ever come due")
        both = sorted(self.holidays.extra & self.workdays.keys())
        if both:
            raise ValueError(f"dates both holiday and workday: {', '.join(map(str, both))}")
        for day, hours in self.workdays.items():
            if isinstance(hours, Weekday) and not self.weekly.on(hours):
                raise ValueError(f"workday {day} works as {hours.value}, which has no hours")
        if self.holidays.country is not None and not self.weekly.on(self.holidays.make_up_as):
            raise ValueError(
                f"make-up working days work as {self.holidays.make_up_as.value}, which has no hours"
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        dates: dict[date, tuple[Interval, ...]] = dict.fromkeys(self.holidays.extra, ())
        for day, hours in self.workdays.items():
            dates[day] = self.weekly.on(hours) if isinstance(hours, Weekday) else hours
        self._days = _DayRule(
            week=tuple(self.weekly.on(day) for day in Weekday),
            dates=dates,
            country=self.holidays.country,
            subdiv=self.holidays.subdiv,
            remove=self.holidays.remove,
            make_up=self.weekly.on(self.holidays.make_up_as),
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # zoneinfo caches instances by key

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        """The local working intervals of a date, holidays and workdays applied."""
        return self._days.hours_on(day)

    def lacks_holidays_for(self, year: int) -> bool:
        """Whether this calendar keeps days off but knows none for ``year`` — its SLA
        clocks would run through that year's holidays. A calendar without any days off
        (round the clock, the demo's) lacks nothing."""
        return bool(self.holidays) and not self.holidays.known_for(year)


_CALENDAR_ID = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class CalendarSet(_Frozen):
    """Named calendars and which team uses which; teams not listed use ``default``."""

    calendars: Annotated[dict[_CALENDAR_ID, BusinessCalendar], Field(min_length=1)]
    default: str
    teams: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_ids(self) -> Self:
        unknown = sorted({self.default, *self.teams.values()} - self.calendars.keys())
        if unknown:
            raise ValueError(f"unknown calendars: {', '.join(unknown)}")
        return self

    def for_team(self, team_id: str) -> BusinessCalendar:
        return self.calendars[self.teams.get(team_id, self.default)]

    def missing_holiday_years(
        self, now: datetime, ahead: timedelta = timedelta(0)
    ) -> dict[str, list[int]]:
        """Teams whose calendar has no holiday data for the current year (and, with
        ``ahead``, the year ``ahead`` from now), with those years; ``DEFAULT_TEAM`` stands
        for every team not listed under ``teams``. Years are local to each calendar's zone.

        Pure: the caller passes ``now``. A team missing from the answer is fine.
        """
        now = _utc(now)
        missing: dict[str, list[int]] = {}
        named = [*self.teams.items(), (DEFAULT_TEAM, self.default)]
        for team, calendar_id in named:
            calendar = self.calendars[calendar_id]
            zone = calendar.zone
            years = sorted({now.astimezone(zone).year, (now + ahead).astimezone(zone).year})
            lacking = [year for year in years if calendar.lacks_holidays_for(year)]
            if lacking:
                missing[team] = lacking
        return missing


# --- the arithmetic ----------------------------------------------------------------------


def due_at(start: datetime, business_seconds: float, calendar: BusinessCalendar) -> datetime:
    """The first instant (UTC) at which ``business_seconds`` of working time have passed
    since ``start``.

    Working time before the next working instant does not exist, so a start outside
    working hours counts from the next working instant, and ``due_at(start, 0)`` is
    ``next_working_instant(start)``. A limit that runs out exactly at the end of a working
    interval is due at that end (18:00 Friday, not 09:00 Monday). ``business_seconds``
    is rounded to the microsecond.
    """
    t, remaining = _utc(start), _duration(business_seconds)
    line = _timelines(calendar).around(t, calendar)
    if line is not None:
        found = line.due_at(t, remaining)
        if found is not None:
            return found
    return _walk_due_at(t, remaining, calendar)


def _walk_due_at(t: datetime, remaining: timedelta, calendar: BusinessCalendar) -> datetime:
    for begin, end in _spans(t, calendar):
        if remaining <= end - begin:
            return begin + remaining
        remaining -= end - begin
    raise AssertionError("unreachable: a calendar has working time every week")


def business_seconds_between(a: datetime, b: datetime, calendar: BusinessCalendar) -> float:
    """Working seconds in ``[a, b)``; negative when ``b`` is before ``a``.

    The inverse of ``due_at``: ``business_seconds_between(t, due_at(t, s)) == s``.
    """
    a, b = _utc(a), _utc(b)
    if b < a:
        return -business_seconds_between(b, a, calendar)
    line = _timelines(calendar).around(a, calendar)
    if line is not None:
        worked = line.worked_between(a, b)
        if worked is not None:
            return worked.total_seconds()
    total = timedelta()
    for begin, end in _spans(a, calendar):
        if begin >= b:
            break
        total += min(end, b) - begin
    return total.total_seconds()


def is_working(t: datetime, calendar: BusinessCalendar) -> bool:
    """Whether ``t`` lies inside working time (intervals are half-open: 18:00 is not)."""
    t = _utc(t)
    return next_working_instant(t, calendar) == t


def next_working_instant(t: datetime, calendar: BusinessCalendar) -> datetime:
    """``t`` itself (in UTC) if it is working time, else where working time next begins."""
    t = _utc(t)
    line = _timelines(calendar).around(t, calendar)
    if line is not None:
        found = line.next_working_instant(t)
        if found is not None:
            return found
    begin, _ = next(_spans(t, calendar))
    return begin


def working_day_start(start: datetime, days: int, calendar: BusinessCalendar) -> datetime:
    """When the ``days``-th working day after the (local) day of ``start`` begins: "in
    two business days" from a Friday afternoon is Tuesday's first working instant. A
    working day is a local date with working hours; holidays and make-up days count as
    the calendar says."""
    zone = calendar.zone
    day = start.astimezone(zone).date()
    left = days
    while left:
        day += _DAY
        if calendar.hours_on(day):
            left -= 1
    first = calendar.hours_on(day)[0].start
    local = datetime.combine(day, time(), tzinfo=zone) + timedelta(seconds=first)
    return next_working_instant(local, calendar)


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{t!r} is naive: calendar arithmetic needs aware datetimes")
    return t.astimezone(UTC)


def _duration(seconds: float) -> timedelta:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"business seconds must be finite and not negative, not {seconds!r}")
    return timedelta(seconds=seconds)


def _spans(t: datetime, calendar: BusinessCalendar) -> Iterator[Span]:
    """Working time from ``t`` (UTC) on: disjoint UTC spans in order, the first clipped to
    start no earlier than ``t``. Endless: every week has working time.

    Local dates are visited in order. In a fold a later date's span can come first (a
    zone that falls back from 00:00 to 23:00), so spans wait in a heap until no later
    date can produce an earlier one: every instant of local date D lies within one day
    of D's midnight read as UTC, because a UTC offset is always under 24 hours.
    """
    zone_key = calendar.timezone
    day = t.astimezone(calendar.zone).date() - _DAY
    pending: list[Span] = []
    while True:
        for span in _day_spans(zone_key, day, calendar.hours_on(day)):
            if span[1] > t:
                heapq.heappush(pending, span)
        horizon = _midnight(day)  # spans of later dates all begin after this
        while pending and pending[0][0] <= horizon:
            begin, end = heapq.heappop(pending)
            yield max(begin, t), end
        day += _DAY


class _Timeline(NamedTuple):
    """A calendar's working spans from ``lo`` for about two months, exactly as ``_spans(lo)``
    yields them, with the working time worked up to the end of each: ``due_at`` and
    friends become two binary searches instead of a walk over local days (an SLA
    service or a replay asks for thousands of due times a second, a few calendars and a
    few months at a time).

    Only kept when the spans do not overlap (every calendar but those with working
    hours inside a fold that crosses midnight). Then the spans a walk from any ``t ≥ lo``
    visits are the listed ones ending after ``t``, in the same order, the first clipped
    to ``t`` — so the answers are the walk's, to the microsecond. An answer that lies
    beyond the listed spans is None: the caller walks.
    """

    begins: list[datetime]
    ends: list[datetime]
    #: Working time from the first span's start to the end of span i.
    worked: list[timedelta]
    #: Every span that begins before ``until`` is listed.
    until: datetime

    def due_at(self, t: datetime, remaining: timedelta) -> datetime | None:
        i = bisect_right(self.ends, t)  # the first span ending after t
        if i == len(self.ends):
            return None
        begin = max(self.begins[i], t)
        first = self.ends[i] - begin
        if remaining <= first:
            return begin + remaining
        # The walk stops in the first span j whose end has ``target`` worked.
        target = self.worked[i] + (remaining - first)
        j = bisect_left(self.worked, target, i + 1)
        if j == len(self.worked):
            return None
        return self.begins[j] + (target - self.worked[j - 1])

    def worked_between(self, a: datetime, b: datetime) -> timedelta | None:
        """Working time in ``[a, b)``, ``a ≤ b``."""
        if b > self.until:
            return None
        i = bisect_right(self.ends, a)  # the first span ending after a
        j = bisect_left(self.begins, b)  # the first span beginning at or after b
        if j <= i:
            return timedelta()
        before = self.worked[i - 1] if i else timedelta()
        total = self.worked[j - 1] - before
        total -= max(self.begins[i], a) - self.begins[i]  # the first span starts at a
        total -= self.ends[j - 1] - min(self.ends[j - 1], b)  # the last ends at b
        return total

    def next_working_instant(self, t: datetime) -> datetime | None:
        i = bisect_right(self.ends, t)
        return max(self.begins[i], t) if i < len(self.ends) else None


#: A timeline starts on the first of a UTC month and lists the spans of 62 days.
_TIMELINE_DAYS = timedelta(days=62)
#: Timelines kept per calendar before they are all dropped (a few KB each).
_TIMELINES_KEPT = 48


class _Timelines:
    """A calendar's timelines by UTC month, built on first use.

    Derived from the calendar's fields only, so it takes no part in comparing or
    copying calendars: every instance equals every other (pydantic compares private
    attributes). Safe to share between threads: a timeline is never changed once built,
    and two threads that build the same month build the same timeline.
    """

    __slots__ = ("_months",)

    def __init__(self) -> None:
        self._months: dict[tuple[int, int], _Timeline | None] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Timelines)

    def __hash__(self) -> int:
        return 0

    def __reduce__(self) -> tuple[type[_Timelines], tuple[()]]:
        # Copies and pickles start empty: a timeline is rebuilt on first use.
        return _Timelines, ()

    def around(self, t: datetime, calendar: BusinessCalendar) -> _Timeline | None:
        """The timeline of ``t``'s UTC month, or None when the spans overlap."""
        key = (t.year, t.month)
        try:
            return self._months[key]
        except KeyError:
            pass
        line = _timeline(datetime(t.year, t.month, 1, tzinfo=UTC), calendar)
        if len(self._months) >= _TIMELINES_KEPT:
            self._months.clear()
        self._months[key] = line
        return line


def _timelines(calendar: BusinessCalendar) -> _Timelines:
    # Read from pydantic's store of private attributes directly: its ``__getattr__``
    # costs more than the binary searches the timelines answer with.
    private = calendar.__pydantic_private__
    assert private is not None  # a calendar has private attributes
    timelines: _Timelines = private["_timelines"]
    return timelines


def _timeline(lo: datetime, calendar: BusinessCalendar) -> _Timeline | None:
    until = lo + _TIMELINE_DAYS
    begins: list[datetime] = []
    ends: list[datetime] = []
    worked: list[timedelta] = []
    total = timedelta()
    for begin, end in _spans(lo, calendar):
        if begin >= until:
            return _Timeline(begins, ends, worked, until)
        if ends and begin < ends[-1]:
            return None  # overlapping spans (a fold across midnight): the walk counts both
        total += end - begin
        begins.append(begin)
        ends.append(end)
        worked.append(total)
    raise AssertionError("unreachable: _spans is endless")


def _midnight(day: date) -> datetime:
    """Local midnight of ``day`` as a wall-clock reading, carried in a UTC datetime."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@lru_cache(maxsize=8192)  # a few MB at most; ~22 years of one calendar
def _day_spans(zone_key: str, day: date, hours: tuple[Interval, ...]) -> tuple[Span, ...]:
    """The UTC spans whose local wall time lies in ``hours`` on ``day``, sorted, merged.

    Within a stretch of constant UTC offset ``o``, wall time ``w`` is the instant
    ``w - o``; each interval is cut against each stretch, which is what makes gaps and
    folds come out exactly (see the module docstring).
    """
    if not hours:
        return ()
    midnight = _midnight(day)
    stretches = _offset_stretches(ZoneInfo(zone_key), midnight - _DAY, midnight + 2 * _DAY)
    spans: list[Span] = []
    for interval in hours:
        wall_start = midnight + timedelta(seconds=interval.start)
        wall_end = midnight + timedelta(seconds=interval.end)
        for lo, hi, offset in stretches:
            begin, end = max(lo, wall_start - offset), min(hi, wall_end - offset)
            if begin < end:
                spans.append((begin, end))
    spans.sort()
    merged: list[Span] = []
    for begin, end in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return tuple(merged)


def _offset_stretches(
    zone: ZoneInfo, lo: datetime, hi: datetime
) -> list[tuple[datetime, datetime, timedelta]]:
    """``[lo, hi)`` cut where the zone's UTC offset changes: ``(from, to, offset)``.

    Offsets are sampled every six hours and a change is bisected to the second (tzdb
    transitions fall on whole seconds).
    """

    def offset(u: datetime) -> timedelta:
        value = u.astimezone(zone).utcoffset()
        assert value is not None  # a ZoneInfo always has one
        return value

    stretches: list[tuple[datetime, datetime, timedelta]] = []
    begin, current = lo, offset(lo)
    probe = lo
    while probe < hi:
        before, probe = probe, min(probe + _SAMPLE, hi)
        if (after := offset(probe)) == current:
            continue
        left, right = before, probe  # offset(left) == current != offset(right)
        while right - left > _SECOND:
            middle = left + timedelta(seconds=(right - left) // _SECOND // 2)
            if offset(middle) == current:
                left = middle
            else:
                right = middle
        stretches.append((begin, right, current))
        begin, current = right, after
    stretches.append((begin, hi, current))
    return stretches
