"""The schedule of the weekly and monthly reports: only complete periods, the latest of
each kind, nothing owed twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadloop_review.domain.schedule import due, last_complete

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def labels(now: datetime, written: frozenset[str] = frozenset()) -> list[str]:
    return [p.label for p in due(now, written)]


def test_monday_midnight_completes_the_week() -> None:
    # 2026-11-30 is the Monday after ISO week 48 (Nov 23 to 29).
    assert labels(datetime(2026, 11, 30, tzinfo=UTC)) == ["2026-W48", "2026-10"]
    assert labels(datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)) == ["2026-W47", "2026-10"]


def test_the_first_completes_the_month() -> None:
    assert labels(datetime(2026, 12, 1, tzinfo=UTC)) == ["2026-W48", "2026-11"]
    assert labels(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))[1] == "2026-10"


def test_year_boundaries() -> None:
    # 2027-01-04 is a Monday; ISO week 53 of 2026 ends Sunday 2027-01-03.
    assert labels(datetime(2027, 1, 4, tzinfo=UTC)) == ["2026-W53", "2026-12"]
    assert labels(datetime(2027, 1, 1, tzinfo=UTC)) == ["2026-W52", "2026-12"]


def test_time_zone_is_utc() -> None:
    with pytest.raises(ValueError, match="time zone"):  # a naive instant is refused
        due(datetime(2026, 12, 1), frozenset())
    plus8 = datetime.fromisoformat("2026-12-01T07:00+08:00")  # 2026-11-30 23:00 UTC
    assert labels(plus8)[1] == "2026-10"


def test_written_periods_are_not_owed() -> None:
    now = datetime(2026, 12, 7, 6, tzinfo=UTC)
    assert labels(now, frozenset({"2026-W49"})) == ["2026-11"]
    assert labels(now, frozenset({"2026-W49", "2026-11"})) == []
    assert labels(now, frozenset({"2026-W48", "2026-10"})) == ["2026-W49", "2026-11"]


@given(instants)
def test_only_complete_periods_and_the_latest(now: datetime) -> None:
    week, month = last_complete(now)
    assert (week.kind, month.kind) == ("week", "month")
    for p in (week, month):
        assert p.end <= now  # complete
    assert now - week.end < timedelta(days=7)  # the latest week
    assert week.start.weekday() == 0
    assert month.start.day == 1
    assert (month.end.year, month.end.month) == (now.year, now.month)  # the latest month


@given(instants, st.sets(st.sampled_from(["2026-W48", "2026-11", "2026-W49", "2026-12"])))
def test_idempotent(now: datetime, written: set[str]) -> None:
    owed = due(now, written)
    assert all(p.label not in written for p in owed)
    assert due(now, written | {p.label for p in owed}) == ()
    assert due(now, written) == owed  # depends on its arguments only
