"""Report periods: an ISO week (``2026-W48``) or a calendar month (``2026-11``), in UTC.

A period is half-open, ``[start, end)``; ``previous`` is the period of the same kind just
before it (the baseline of the demand trends and of a team's stage losses), and
``buckets`` splits it for the trends over time (days of a week, ISO weeks of a month).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = ["Period", "parse_period"]

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    kind: str  # "week" | "month"
    label: str
    start: datetime
    end: datetime

    def previous(self) -> Period:
        if self.kind == "week":
            return _week(self.start.date() - timedelta(days=7))
        first = self.start.date()
        last_month = (first - timedelta(days=1)).replace(day=1)
        return _month(last_month.year, last_month.month)

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end

    def bucket(self, when: datetime) -> str:
        """The sub-period ``when`` falls in: its day (week) or its ISO week (month)."""
        if self.kind == "week":
            return when.astimezone(UTC).date().isoformat()
        year, week, _ = when.astimezone(UTC).isocalendar()
        return f"{year}-W{week:02d}"

    def buckets(self) -> tuple[str, ...]:
        days = (self.end - self.start).days
        seen: dict[str, None] = {}
        for n in range(days):
            seen[self.bucket(self.start + timedelta(days=n))] = None
        return tuple(seen)

    def months(self) -> tuple[date, ...]:
        """The first days of the months the period touches (a week may span two)."""
        firsts = {
            self.start.date().replace(day=1),
            (self.end - timedelta(days=1)).date().replace(day=1),
        }
        return tuple(sorted(firsts))


def _week(monday: date) -> Period:
    year, week, _ = monday.isocalendar()
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    return Period("week", f"{year}-W{week:02d}", start, start + timedelta(days=7))


def _month(year: int, month: int) -> Period:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return Period("month", f"{year}-{month:02d}", start, end)


def parse_period(text: str) -> Period:
    """``2026-W48`` (ISO week) or ``2026-11`` (month); ValueError otherwise."""
    if m := _WEEK.match(text):
        return _week(date.fromisocalendar(int(m[1]), int(m[2]), 1))
    if m := _MONTH.match(text):
        month = int(m[2])
        if not 1 <= month <= 12:
            raise ValueError(f"no month {month} in {text!r}")
        return _month(int(m[1]), month)
    raise ValueError(f"a period is an ISO week like 2026-W48 or a month like 2026-11, not {text!r}")
