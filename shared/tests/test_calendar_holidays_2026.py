"""The shipped calendars (config/calendars.yaml) against the official 2026 dates.

The dates are typed here from the vendor reference, /work/shared/vendors-messaging.md §6,
not taken from python-holidays: §6a is the State Council's notice on the 2026 public
holidays (国务院办公厅关于2026年部分节假日安排的通知, 2025-11-04, as republished by Xinhua
at https://politics.gmw.cn/2025-11/04/content_38391083.htm), §6b the US federal holidays
of 5 U.S.C. 6103 with OPM's observance rule (Saturday → Friday, Sunday → Monday), dates
as published by the U.S. Court of Appeals, 11th Circuit. If the library and the notice
ever disagree, this test fails and the calendar needs an override in its YAML.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from leadloop.calendar import BusinessCalendar, CalendarSet

CONFIG = Path(__file__).resolve().parents[2] / "config" / "calendars.yaml"


def shipped(team: str) -> BusinessCalendar:
    cals = CalendarSet.model_validate(yaml.safe_load(CONFIG.read_text(encoding="utf-8")))
    return cals.for_team(team)


def days(first: str, last: str) -> list[date]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


# §6a: holiday → (days off, inclusive), (make-up working days, 调休上班).
CN_2026 = {
    "元旦 New Year's Day": (days("2026-01-01", "2026-01-03"), ["2026-01-04"]),
    "春节 Spring Festival": (days("2026-02-15", "2026-02-23"), ["2026-02-14", "2026-02-28"]),
    "清明节 Qingming": (days("2026-04-04", "2026-04-06"), []),
    "劳动节 Labour Day": (days("2026-05-01", "2026-05-05"), ["2026-05-09"]),
    "端午节 Dragon Boat Festival": (days("2026-06-19", "2026-06-21"), []),
    "中秋节 Mid-Autumn Festival": (days("2026-09-25", "2026-09-27"), []),
    "国庆节 National Day": (days("2026-10-01", "2026-10-07"), ["2026-09-20", "2026-10-10"]),
}
CN_DAYS_OFF = sorted(d for off, _ in CN_2026.values() for d in off)
CN_MAKE_UP = sorted(date.fromisoformat(d) for _, make_up in CN_2026.values() for d in make_up)

# §6b: (holiday, date, observed date).
US_2026 = [
    ("New Year's Day", "2026-01-01", "2026-01-01"),
    ("Birthday of Martin Luther King, Jr.", "2026-01-19", "2026-01-19"),
    ("Washington's Birthday", "2026-02-16", "2026-02-16"),
    ("Memorial Day", "2026-05-25", "2026-05-25"),
    ("Juneteenth National Independence Day", "2026-06-19", "2026-06-19"),
    ("Independence Day", "2026-07-04", "2026-07-03"),  # a Saturday: off the Friday before
    ("Labor Day", "2026-09-07", "2026-09-07"),
    ("Columbus Day", "2026-10-12", "2026-10-12"),
    ("Veterans Day", "2026-11-11", "2026-11-11"),
    ("Thanksgiving Day", "2026-11-26", "2026-11-26"),
    ("Christmas Day", "2026-12-25", "2026-12-25"),
]
US_OBSERVED = sorted(date.fromisoformat(observed) for _, _, observed in US_2026)


def test_the_notice_adds_up_as_the_document_says() -> None:
    # "33 days off in total; the six weekend days ... are working days."
    assert len(CN_DAYS_OFF) == len(set(CN_DAYS_OFF)) == 33
    assert len(CN_MAKE_UP) == 6
    assert all(d.weekday() >= 5 for d in CN_MAKE_UP)


@pytest.mark.parametrize("day", CN_DAYS_OFF, ids=str)
def test_every_2026_day_off_in_china_has_no_working_time(day: date) -> None:
    assert shipped("team-cn").hours_on(day) == ()


@pytest.mark.parametrize("day", CN_MAKE_UP, ids=str)
def test_every_2026_make_up_day_in_china_works_a_full_day(day: date) -> None:
    cal = shipped("team-cn")
    assert cal.hours_on(day) == cal.weekly.monday != ()


def test_every_other_2026_day_in_china_keeps_its_weekday_hours() -> None:
    cal = shipped("team-cn")
    special = {*CN_DAYS_OFF, *CN_MAKE_UP}
    for day in days("2026-01-01", "2026-12-31"):
        if day not in special:
            assert cal.hours_on(day) == cal.weekly.on(day.weekday()), day


@pytest.mark.parametrize("team", ["team-enterprise", "team-global"])
def test_every_2026_federal_holiday_is_off_on_its_observed_day(team: str) -> None:
    cal = shipped(team)
    for name, _, observed in US_2026:
        assert cal.hours_on(date.fromisoformat(observed)) == (), name
    # Independence Day itself is a Saturday, off anyway
    assert cal.hours_on(date(2026, 7, 4)) == ()


@pytest.mark.parametrize("team", ["team-enterprise", "team-global"])
def test_no_other_2026_weekday_is_off_in_the_us(team: str) -> None:
    cal = shipped(team)
    for day in days("2026-01-01", "2026-12-31"):
        if day.weekday() < 5 and day not in US_OBSERVED:
            assert cal.hours_on(day) != (), day
    # New Year's Day 2027 is a Friday: no 2026 day is observed for it
    assert cal.hours_on(date(2026, 12, 31)) == cal.weekly.thursday
