"""The announcement of a written report (``review.published``): the period, the
headline numbers, the first suggested actions and where the files are.

Pure: the time comes in as ``now``. No personal data goes out: the numbers are counts
and amounts, and the suggestions' texts name teams, rep ids, sources and percentages
only (domain/suggest.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from leadloop.events import ReviewKind, ReviewPublished, deterministic_id
from leadloop_review.domain.model import Report
from leadloop_review.domain.period import Period

__all__ = ["MAX_SUGGESTIONS", "SUGGESTION_CHARS", "announcement", "announcement_id"]

#: The suggestions an announcement carries (the report has them all).
MAX_SUGGESTIONS = 3
#: A suggestion longer than this is cut (the contract's limit).
SUGGESTION_CHARS = 500


def announcement_id(period: str, team: str | None) -> str:
    """Deterministic per period and team: announced again, it is the same event."""
    return deterministic_id("review.published", period, team or "*")


def announcement(
    report: Report, period: Period, files: Sequence[str], now: datetime
) -> ReviewPublished:
    """The event telling that ``report`` (of ``period``) was written as ``files`` (paths
    relative to the directory's parent), published at ``now``."""
    total = report.funnel.total
    texts = [s.text for s in report.suggestions[:MAX_SUGGESTIONS]]
    return ReviewPublished(
        event_id=announcement_id(period.label, report.team),
        occurred_at=report.until,
        period=period.label,
        kind=ReviewKind(period.kind),
        team_id=report.team,
        period_start=period.start,
        period_end=period.end,
        published_at=now,
        where=", ".join(sorted(files)),
        leads=report.leads,
        won=total.won,
        won_amount=total.won_cents / 100,
        lost=total.lost,
        suggestions=[
            t if len(t) <= SUGGESTION_CHARS else t[: SUGGESTION_CHARS - 1] + "…" for t in texts
        ],
    )
