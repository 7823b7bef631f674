"""The review's use case: stream the period's facts lead by lead, fold and tally each,
and build the report."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time

from leadloop_review.domain.build import build_report
from leadloop_review.domain.model import Report
from leadloop_review.domain.period import Period
from leadloop_review.domain.record import fold_lead
from leadloop_review.domain.schedule import due
from leadloop_review.domain.score_model import ScoreModel
from leadloop_review.domain.tally import Tally
from leadloop_review.ports import FactSource, ReportSink

__all__ = ["make_report", "write_due"]


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
) -> list[str]:
    """Write every report owed at ``now`` (the last complete week and month, in each
    format of ``renders`` not yet in ``sink``), each period's report built once, with
    every fact up to ``now``. Returns where they went; nothing when all are written."""
    owed: dict[str, tuple[Period, list[str]]] = {}
    for fmt in renders:
        for period in due(now, sink.written(fmt)):
            owed.setdefault(period.label, (period, []))[1].append(fmt)
    wrote = []
    for period, fmts in owed.values():
        report, _ = await make_report(source, period, now, score_model=score_model)
        for fmt in fmts:
            wrote.append(sink.write(period.label, fmt, renders[fmt](report)))
    return wrote
