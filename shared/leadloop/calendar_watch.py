"""Loud, not fatal, when a team's business calendar knows no holidays for the year.

A calendar that keeps days off but has none for the current year (hand-typed dates of
past years only, or a python-holidays country whose data stops before it) makes SLA
clocks run through that year's holidays: reminders and pages on days nobody works.
That is a reason to tell people, not to refuse to start: the clocks still count the
weekly hours. Used by the services that load the calendars (assignment, sla-monitor):

* a ``calendar_without_holidays`` warning (team, year) in the log at start;
* the gauge ``leadloop_calendar_holidays_missing{team}`` on the service's ``/metrics``,
  1 while the team's calendar lacks a year, evaluated at every scrape (so it turns on
  when a running service crosses into an uncovered year); Prometheus alerts on it
  (``CalendarWithoutHolidays``, deploy/prometheus/rules/calendars.yml);
* ``calendar_missing_holidays: [teams]`` in ``/readyz``, which stays ready.

``team`` is a team id of the calendars file, or ``*`` for the teams it does not list
(the ``default`` calendar). The check looks ``LOOKAHEAD`` ahead as well: in December a
due time can already fall into January.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from leadloop.calendar import DEFAULT_TEAM, CalendarSet
from leadloop.clock import Clock
from leadloop.kafka import serve_dead_letters
from leadloop.logging import get_logger
from leadloop.runtime import ReadyContributor

__all__ = ["LOOKAHEAD", "MISSING_GAUGE", "CalendarGauge", "watch_calendars"]

log = get_logger(__name__)

#: How far ahead of now a year must be covered: the coming year's notice is due in
#: December (China's State Council publishes it in November).
LOOKAHEAD = timedelta(days=30)

#: The missing years are looked at again after this many seconds.
REFRESH_S = 60.0

#: 1 while the team's calendar has no holiday data for the current (or coming) year.
MISSING_GAUGE = "leadloop_calendar_holidays_missing"


class CalendarGauge(Collector):
    """``leadloop_calendar_holidays_missing{team}``, one series per team and ``*``."""

    def __init__(
        self,
        calendars: CalendarSet,
        clock: Clock,
        ahead: timedelta,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._calendars = calendars
        self._clock = clock
        self._ahead = ahead
        self._monotonic = monotonic
        self._cached: tuple[float, dict[str, list[int]]] | None = None

    def missing(self) -> dict[str, list[int]]:
        """Recomputed at most once a minute: /readyz and /metrics run on the worker's
        event loop, and a year the holiday library has not built yet costs a
        computation. Recomputed on every probe, it kept the sla-monitor from rejoining its
        consumer group after a broker restart (tests/faults/test_pipeline_faults.py)."""
        at = self._monotonic()
        if self._cached is None or at - self._cached[0] >= REFRESH_S:
            self._cached = (
                at,
                self._calendars.missing_holiday_years(self._clock.now(), self._ahead),
            )
        return self._cached[1]

    def collect(self) -> Iterator[Metric]:
        missing = self.missing()
        family = GaugeMetricFamily(
            MISSING_GAUGE,
            "1 while the team's business calendar has no holiday data for the current "
            "(or coming) year; * is every team the calendars file does not list",
            labels=["team"],
        )
        for team in sorted({*self._calendars.teams, DEFAULT_TEAM}):
            family.add_metric([team], 1.0 if team in missing else 0.0)
        yield family


def watch_calendars(
    app: faust.App,
    calendars: CalendarSet,
    clock: Clock,
    *,
    ahead: timedelta = LOOKAHEAD,
    registry: CollectorRegistry | None = None,
) -> ReadyContributor:
    """Log the missing years now, serve the gauge on ``/metrics``, and return the
    ``/readyz`` contributor (always ready). Call it from the service's ``wire``;
    ``registry`` holds the service's own metrics, served on the same page."""
    gauge = CalendarGauge(calendars, clock, ahead)
    for team, years in sorted(gauge.missing().items()):
        for year in years:
            log.warning("calendar_without_holidays", team=team, year=year)
    if registry is None:
        registry = CollectorRegistry(auto_describe=True)
    registry.register(gauge)
    serve_dead_letters(app, registry)

    @app.page("/metrics")
    async def metrics(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # aiohttp takes the charset separately; the exposition format is UTF-8 text.
        return self.bytes(
            generate_latest(registry),
            content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4",
        )

    def ready() -> tuple[bool, dict[str, Any]]:
        return True, {"calendar_missing_holidays": sorted(gauge.missing())}

    return ready
