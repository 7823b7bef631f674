"""The announcement of the scheduled reports: the event's contract, what it carries, and
the use case with a broker that is down and comes back (fakes of the directory and the
publisher)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from services.review.tests.sample_report import NOV, UNTIL, sample_report

from leadloop.events import ReviewPublished
from leadloop_review.domain.announce import announcement, announcement_id
from leadloop_review.handlers import write_due
from leadloop_review.ports import LeadFacts, PublishFailed

VALID: dict[str, Any] = {
    "event_id": "e-1",
    "occurred_at": "2026-12-01T00:00:00Z",
    "period": "2026-11",
    "kind": "month",
    "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-12-01T00:00:00Z",
    "published_at": "2026-12-01T00:00:05Z",
    "where": "reviews/review-2026-11.md",
    "leads": 3,
    "won": 1,
    "won_amount": 100.0,
    "lost": 1,
}


def test_the_event_accepts_a_month_and_a_week() -> None:
    assert ReviewPublished.model_validate(VALID).team_id is None
    week = {**VALID, "period": "2026-W48", "kind": "week"}
    assert ReviewPublished.model_validate(week).period == "2026-W48"


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "week"},  # a month's label
        {"period": "2026-13x"},
        {"period_end": "2026-11-01T00:00:00Z"},
        {"suggestions": ["a", "b", "c", "d"]},
        {"suggestions": ["x" * 501]},
        {"leads": -1},
        {"where": ""},
        {"period_start": "2026-11-01T00:00:00"},  # no offset
        {"email": "someone@example.com"},  # unknown fields are refused
    ],
)
def test_the_event_refuses(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ReviewPublished.model_validate({**VALID, **change})


def test_an_announcement_carries_the_headline_and_three_suggestions() -> None:
    report = sample_report()
    event = announcement(report, NOV, ["reviews/review-2026-11.md"], UNTIL)
    assert event.event_id == announcement_id("2026-11", None)
    assert (event.period, event.kind.value, event.team_id) == ("2026-11", "month", None)
    assert (event.period_start, event.period_end) == (NOV.start, NOV.end)
    assert (event.leads, event.won, event.lost) == (
        report.leads,
        report.funnel.total.won,
        report.funnel.total.lost,
    )
    assert event.won_amount == report.funnel.total.won_cents / 100
    assert event.suggestions == [s.text for s in report.suggestions[:3]]
    assert len(report.suggestions) > 3
    # The same period and team: the same id, whenever it is announced.
    assert announcement_id("2026-11", None) == announcement_id("2026-11", None)
    assert announcement_id("2026-11", "team-cn") != announcement_id("2026-11", None)


class NoFacts:
    async def _none(self) -> AsyncIterator[LeadFacts]:
        return
        yield

    def accepted(self, start: datetime, end: datetime) -> AsyncIterator[LeadFacts]:
        return self._none()

    def won(self, start: datetime, end: datetime) -> AsyncIterator[LeadFacts]:
        return self._none()

    async def snapshots(self, months: Any) -> list[Any]:
        return []


class MemoryDir:
    def __init__(self) -> None:
        self.reports: dict[tuple[str, str], str] = {}
        self.staged: dict[str, str] = {}
        self.marked: set[str] = set()

    def written(self, fmt: str) -> set[str]:
        return {label for label, f in self.reports if f == fmt}

    def write(self, label: str, fmt: str, text: str) -> str:
        self.reports[label, fmt] = text
        return f"/srv/reviews/review-{label}.{fmt}"

    def files(self, label: str) -> list[str]:
        return sorted(f"reviews/review-{lb}.{f}" for lb, f in self.reports if lb == label)

    def stage(self, label: str, announcement: str) -> None:
        self.staged[label] = announcement

    def unannounced(self) -> dict[str, str]:
        return {k: v for k, v in self.staged.items() if k not in self.marked}

    def mark_announced(self, label: str) -> None:
        self.marked.add(label)


class Broker:
    def __init__(self) -> None:
        self.up = False
        self.got: list[ReviewPublished] = []

    async def publish(self, event: ReviewPublished) -> None:
        if not self.up:
            raise PublishFailed("KafkaConnectionError: down")
        self.got.append(event)


def test_a_period_not_acknowledged_is_announced_by_the_next_run() -> None:
    sink, broker = MemoryDir(), Broker()
    renders = {"md": lambda r: f"# {r.period}\n"}
    monday = datetime(2026, 12, 7, tzinfo=UTC)

    def once(now: datetime) -> Any:
        return asyncio.run(write_due(NoFacts(), sink, now, renders, publisher=broker))

    first = once(monday)
    assert first.wrote == ["/srv/reviews/review-2026-W49.md", "/srv/reviews/review-2026-11.md"]
    assert (first.announced, first.unannounced) == ([], ["2026-11", "2026-W49"])

    broker.up = True
    later = datetime(2026, 12, 7, 6, tzinfo=UTC)
    second = once(later)
    assert (second.wrote, second.announced, second.unannounced) == ([], ["2026-11", "2026-W49"], [])
    month, week = broker.got
    assert (month.period, week.period) == ("2026-11", "2026-W49")
    assert month.event_id == announcement_id("2026-11", None)
    assert month.where == "reviews/review-2026-11.md"  # no host path
    assert (month.occurred_at, month.published_at) == (monday, later)

    third = once(datetime(2026, 12, 7, 9, tzinfo=UTC))
    assert (third.wrote, third.announced, third.unannounced) == ([], [], [])
    assert len(broker.got) == 2


def test_without_a_publisher_nothing_is_staged() -> None:
    sink = MemoryDir()
    run = asyncio.run(
        write_due(NoFacts(), sink, datetime(2026, 12, 7, tzinfo=UTC), {"md": lambda r: "x"})
    )
    assert len(run.wrote) == 2
    assert (sink.staged, run.announced) == ({}, [])
