"""The review's use cases: stream the period's facts lead by lead, fold and tally each,
and build the report; write the reports owed and announce them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time

from leadloop.events import ReviewPublished
from leadloop.logging import get_logger
from leadloop_review.domain.announce import announcement
from leadloop_review.domain.build import build_report
from leadloop_review.domain.model import Report
from leadloop_review.domain.period import Period
from leadloop_review.domain.record import fold_lead
from leadloop_review.domain.schedule import due
from leadloop_review.domain.score_model import ScoreModel
from leadloop_review.domain.tally import Tally
from leadloop_review.ports import FactSource, Publisher, PublishFailed, ReportSink

__all__ = ["ScheduledRun", "make_report", "write_due"]

log = get_logger(__name__)


@dataclass
class ScheduledRun:
    """What one scheduled run did: the reports it wrote (where they went), the periods
    it announced, and those it could not announce (left for the next run)."""

    wrote: list[str] = field(default_factory=list)
    announced: list[str] = field(default_factory=list)
    unannounced: list[str] = field(default_factory=list)


async def make_report(
    source: FactSource,
    period: Period,
    until: datetime,
    team: str | None = None,
    score_model: ScoreModel | None = None,
) -> tuple[Report, dict[str, int]]:
    """The report of ``period`` with every fact up to ``until``, and how many leads
    were read per scan (``current``, ``previous``, ``wins``, and ``read``)."""
    tally = Tally(period)
    read = 0
    async for lead_id, facts in source.accepted(period.previous().start, period.end):
        read += 1
        record = fold_lead(lead_id, facts, until)
        if record is not None:
            tally.add(record)
    months = period.months()
    first = datetime.combine(months[0], time(), UTC)
    last = months[-1]
    after = datetime(last.year + (last.month == 12), last.month % 12 + 1, 1, tzinfo=UTC)
    async for lead_id, facts in source.won(first, after):
        read += 1
        record = fold_lead(lead_id, facts, until)
        if record is not None:
            tally.add_win(record)
    snapshots = await source.snapshots(months)
    report = build_report(tally, until, team, snapshots, score_model)
    return report, {**tally.counted, "read": read}


async def write_due(
    source: FactSource,
    sink: ReportSink,
    now: datetime,
    renders: Mapping[str, Callable[[Report], str]],
    score_model: ScoreModel | None = None,
    publisher: Publisher | None = None,
) -> ScheduledRun:
    """Write every report owed at ``now`` (the last complete week and month, in each
    format of ``renders`` not yet in ``sink``), each period's report built once, with
    every fact up to ``now``; nothing is written when all are.

    With a ``publisher``, each period written is announced (one ``ReviewPublished``,
    every team), and so is every earlier period whose announcement the broker has not
    acknowledged yet: the announcement is staged in ``sink`` with the reports and marked
    announced only after the acknowledgement. Without one nothing is staged."""
    run = ScheduledRun()
    owed: dict[str, tuple[Period, list[str]]] = {}
    for fmt in renders:
        for period in due(now, sink.written(fmt)):
            owed.setdefault(period.label, (period, []))[1].append(fmt)
    for period, fmts in owed.values():
        report, _ = await make_report(source, period, now, score_model=score_model)
        for fmt in fmts:
            run.wrote.append(sink.write(period.label, fmt, renders[fmt](report)))
        if publisher is not None:
            event = announcement(report, period, sink.files(period.label), now)
            sink.stage(period.label, event.model_dump_json())
    if publisher is not None:
        await _announce(sink, publisher, now, run)
    return run


async def _announce(
    sink: ReportSink, publisher: Publisher, now: datetime, run: ScheduledRun
) -> None:
    pending = sorted(sink.unannounced().items())
    for n, (label, staged) in enumerate(pending):
        event = ReviewPublished.model_validate_json(staged).model_copy(update={"published_at": now})
        try:
            await publisher.publish(event)
        except PublishFailed as exc:
            # The broker is down: the rest would fail the same way. Staged, they go out
            # with the next run.
            log.warning("review_not_announced", period=label, error=str(exc))
            run.unannounced.extend(lb for lb, _ in pending[n:])
            return
        sink.mark_announced(label)
        run.announced.append(label)
