from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadloop_review.domain.period import parse_period


def test_months_and_weeks() -> None:
    m = parse_period("2026-11")
    assert (m.start, m.end) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert m.previous().label == "2026-10"
    assert parse_period("2026-01").previous().label == "2025-12"
    assert parse_period("2026-12").end == datetime(2027, 1, 1, tzinfo=UTC)
    assert m.buckets()[0] == "2026-W44"
    assert len(m.buckets()) == 6  # 1 Nov 2026 is a Sunday, 30 Nov a Monday
    w = parse_period("2026-W48")
    assert (w.start, w.end) == (
        datetime(2026, 11, 23, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
    )
    assert w.previous().label == "2026-W47"
    assert parse_period("2026-W01").previous().label == "2025-W52"
    assert len(w.buckets()) == 7
    assert parse_period("2026-W49").months() == (
        datetime(2026, 11, 1).date(),
        datetime(2026, 12, 1).date(),
    )


@pytest.mark.parametrize("bad", ["2026-13", "2026-W54", "nov", "2026-11-01"])
def test_bad_periods(bad: str) -> None:
    with pytest.raises(ValueError, match=r"month|period|week"):
        parse_period(bad)
