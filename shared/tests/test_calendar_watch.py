"""A team's calendar without this year's holidays is loud (a warning, a gauge, a /readyz
detail) and never fails readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from leadloop.calendar import CalendarSet
from leadloop.calendar_watch import CalendarGauge, watch_calendars
from leadloop.clock import FixedClock

OFFICE = {d: ["09:00-18:00"] for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}
CALENDARS = CalendarSet.model_validate(
    {
        "calendars": {
            "typed": {"timezone": "UTC", "weekly": OFFICE, "holidays": ["2025-12-25"]},
            "cn": {"timezone": "Asia/Shanghai", "weekly": OFFICE, "holidays": {"country": "CN"}},
            "always": {"timezone": "UTC", "weekly": OFFICE},
        },
        "default": "typed",
        "teams": {"team-old": "typed", "team-cn": "cn", "team-any": "always"},
    }
)


class PagesOnly:
    """The part of a faust app the watch uses: ``page`` registers a view."""

    def __init__(self) -> None:
        self.pages: dict[str, Callable[..., Any]] = {}

    def page(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            self.pages[path] = view
            return view

        return register


def scrape(gauge: CalendarGauge) -> str:
    registry = CollectorRegistry()
    registry.register(gauge)
    return generate_latest(registry).decode()


def test_the_gauge_is_one_for_each_team_whose_calendar_lacks_the_year() -> None:
    clock = FixedClock(datetime(2026, 6, 1, tzinfo=UTC))
    text = scrape(CalendarGauge(CALENDARS, clock, timedelta(days=30)))
    assert 'leadloop_calendar_holidays_missing{team="team-old"} 1.0' in text
    assert 'leadloop_calendar_holidays_missing{team="*"} 1.0' in text  # the default
    assert 'leadloop_calendar_holidays_missing{team="team-cn"} 0.0' in text
    assert 'leadloop_calendar_holidays_missing{team="team-any"} 0.0' in text


def test_the_gauge_follows_the_clock_into_an_uncovered_year_a_minute_later() -> None:
    clock = FixedClock(datetime(2026, 11, 1, tzinfo=UTC))
    ticks = [0.0]
    gauge = CalendarGauge(CALENDARS, clock, timedelta(days=30), monotonic=lambda: ticks[0])
    assert 'team="team-cn"} 0.0' in scrape(gauge)
    clock.advance(timedelta(days=40))  # December: 2027's notice is not in the library
    ticks[0] = 59.0  # probes within the minute reuse the last look (the event loop's time)
    assert 'team="team-cn"} 0.0' in scrape(gauge)
    ticks[0] = 60.0
    assert 'team="team-cn"} 1.0' in scrape(gauge)


def test_watch_logs_each_missing_year_and_stays_ready() -> None:
    app = PagesOnly()
    clock = FixedClock(datetime(2026, 12, 7, tzinfo=UTC))
    with capture_logs() as logs:
        ready = watch_calendars(app, CALENDARS, clock)  # type: ignore[arg-type]
    warnings = [(e["team"], e["year"]) for e in logs if e["event"] == "calendar_without_holidays"]
    assert sorted(warnings) == [
        ("*", 2026),
        ("*", 2027),
        ("team-cn", 2027),
        ("team-old", 2026),
        ("team-old", 2027),
    ]
    assert all(e["log_level"] == "warning" for e in logs)
    assert ready() == (True, {"calendar_missing_holidays": ["*", "team-cn", "team-old"]})
    assert "/metrics" in app.pages


def test_the_metrics_page_serves_the_gauge() -> None:
    app = PagesOnly()
    watch_calendars(app, CALENDARS, FixedClock(datetime(2026, 6, 1, tzinfo=UTC)))  # type: ignore[arg-type]

    class View:
        def bytes(self, body: bytes, content_type: str) -> tuple[bytes, str]:
            return body, content_type

    body, content_type = asyncio.run(app.pages["/metrics"](View(), None))
    assert content_type.startswith("text/plain")
    assert b'leadloop_calendar_holidays_missing{team="team-old"} 1.0' in body
