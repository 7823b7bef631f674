"""Which reports a scheduled run owes: the last complete ISO week and the last complete
month at ``now`` (UTC), less those already written.

A week is complete from the Monday 00:00 UTC that ends it, a month from the 1st 00:00
UTC of the next; only the latest complete period of each kind is owed (a run that was
down for a month writes last month and last week, not every week it missed). The answer
depends on ``now`` and ``written`` only, so running it again after the reports are
written owes nothing.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import UTC, datetime, timedelta

from leadloop_review.domain.period import Period, parse_period

__all__ = ["due", "last_complete"]


def last_complete(now: datetime) -> tuple[Period, Period]:
    """The last complete ISO week and the last complete month at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now needs a time zone")
    today = now.astimezone(UTC).date()
    monday = today - timedelta(days=today.weekday())
    year, week, _ = (monday - timedelta(days=7)).isocalendar()
    last_month = today.replace(day=1) - timedelta(days=1)
    return (
        parse_period(f"{year}-W{week:02d}"),
        parse_period(f"{last_month.year}-{last_month.month:02d}"),
    )


def due(now: datetime, written: Set[str]) -> tuple[Period, ...]:
    """The periods owed at ``now`` whose labels (``2026-W48``, ``2026-11``) are not in
    ``written``: the week first, then the month."""
    return tuple(p for p in last_complete(now) if p.label not in written)
