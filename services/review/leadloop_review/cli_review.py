"""``leadloop review``: the review (复盘) report for a period."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from leadloop import settings as settings_mod
from leadloop_review.domain.model import Report
from leadloop_review.domain.period import Period, parse_period
from leadloop_review.domain.score_model import ScoreModel, ScoreModelError
from leadloop_review.render import formats, renderer
from leadloop_review.settings import ReviewSettings

if TYPE_CHECKING:
    from leadloop.settings import KafkaSettings
    from leadloop_review.handlers import ScheduledRun

__all__ = ["app"]

#: The score model whose attributes the report ranks: by default the one ingest scores
#: with (docs/scoring.md).
SCORE_MODEL = typer.Option(
    "--score-model",
    envvar="LEADLOOP_SCORE_MODEL_FILE",
    help="a model written by `leadloop score fit` (default: LEADLOOP_SCORE_MODEL_FILE)",
)

app = typer.Typer(help="the review (复盘) report for a week or a month", no_args_is_help=False)


@app.callback(invoke_without_command=True)
def review(
    ctx: typer.Context,
    period: Annotated[
        str | None, typer.Option(help="an ISO week (2026-W48) or a month (2026-11)")
    ] = None,
    team: Annotated[str | None, typer.Option(help="one team only (default: every team)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="md, json or html")] = "md",
    out: Annotated[Path | None, typer.Option(help="write here instead of standard output")] = None,
    until: Annotated[
        str | None,
        typer.Option(help="count facts up to this time (ISO 8601, default now)"),
    ] = None,
    score_model: Annotated[Path | None, SCORE_MODEL] = None,
) -> None:
    """Write the report of PERIOD: funnel, losses, bottlenecks, accountability, silent
    leaks, repurchase, satisfaction, forecast, demand trends and suggested actions."""
    if ctx.invoked_subcommand is not None:
        return
    if period is None:
        raise typer.BadParameter("--period is required (2026-W48 or 2026-11)")
    try:
        p = parse_period(period)
        render = renderer(fmt)
        cut = datetime.fromisoformat(until) if until else datetime.now(UTC)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if cut.tzinfo is None:
        raise typer.BadParameter("--until needs a time zone offset, e.g. 2026-12-01T00:00+00:00")
    model = _model(score_model)
    text = render(asyncio.run(_report(p, cut, team, model)))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


@app.command()
def scheduled(
    directory: Annotated[Path, typer.Option("--dir", help="write the reports here")],
    fmt: Annotated[
        str, typer.Option("--format", help="comma-separated formats (default: every installed)")
    ] = "",
    every: Annotated[
        float | None,
        typer.Option(help="run again every this many seconds (default: once, for cron)"),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="the run's time (ISO 8601, default now)", hidden=True)
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="default: DATABASE_URL / LEADLOOP_DATABASE_URL")
    ] = None,
    score_model: Annotated[Path | None, SCORE_MODEL] = None,
    announce: Annotated[
        bool | None,
        typer.Option(
            "--announce/--no-announce",
            help="announce each period written on review.published (default:"
            " LEADLOOP_REVIEW_ANNOUNCE, else when LEADLOOP_KAFKA__* is set)",
        ),
    ] = None,
) -> None:
    """Write the reports of the last complete ISO week (from Monday 00:00 UTC) and the
    last complete month (from the 1st 00:00 UTC) to DIR as review-2026-W48.md,
    review-2026-11.json, ..., each once: a report already in DIR is not written again.
    Each period written is announced on Kafka (review.published; the notifier tells the
    managers); one the broker did not acknowledge is announced by the next run, and a
    single run then exits with 1."""
    try:
        names = [f.strip() for f in fmt.split(",") if f.strip()] or list(formats())
        renders = {f: renderer(f) for f in names}
        at = datetime.fromisoformat(now) if now else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if at is not None and at.tzinfo is None:
        raise typer.BadParameter("--now needs a time zone offset")
    cfg = (
        settings_mod.load(ReviewSettings, DATABASE_URL=database_url)
        if database_url
        else settings_mod.load(ReviewSettings)
    )
    url = cfg.database_url.get_secret_value()
    kafka = cfg.kafka if (cfg.announces if announce is None else announce) else None
    while True:
        # Read on every run: a model fitted since the last one is the one to show.
        model = _model(score_model)
        now_at = at or datetime.now(UTC)
        run = asyncio.run(_write_due(url, directory, now_at, renders, model, kafka))
        for path in run.wrote:
            typer.echo(f"wrote {path}", err=True)
        for label in run.announced:
            typer.echo(f"announced {label}", err=True)
        if run.unannounced:
            typer.echo(
                f"not announced (the broker did not acknowledge): {', '.join(run.unannounced)};"
                " the next run announces them",
                err=True,
            )
        if every is None:
            if run.unannounced:
                raise typer.Exit(1)
            return
        time.sleep(every)


def _model(path: Path | None) -> ScoreModel | None:
    if path is None:
        return None
    from leadloop_review.adapters.score_file import read_model

    try:
        return read_model(path)
    except ScoreModelError as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--score-model") from None


async def _write_due(
    url: str,
    directory: Path,
    now: datetime,
    renders: dict[str, Callable[[Report], str]],
    model: ScoreModel | None,
    kafka: KafkaSettings | None,
) -> ScheduledRun:
    import asyncpg

    from leadloop_review.adapters.postgres import FactStore
    from leadloop_review.adapters.publisher import KafkaPublisher
    from leadloop_review.adapters.report_dir import ReportDir
    from leadloop_review.handlers import write_due

    publisher = KafkaPublisher(kafka) if kafka is not None else None
    conn = await asyncpg.connect(url)
    try:
        return await write_due(
            FactStore(conn), ReportDir(directory), now, renders, model, publisher
        )
    finally:
        await conn.close()
        if publisher is not None:
            await publisher.close()


async def _report(
    period: Period, until: datetime, team: str | None, model: ScoreModel | None
) -> Report:
    import asyncpg

    from leadloop_review.adapters.postgres import FactStore
    from leadloop_review.handlers import make_report

    cfg = settings_mod.load(ReviewSettings)
    conn = await asyncpg.connect(cfg.database_url.get_secret_value())
    try:
        report, _ = await make_report(FactStore(conn), period, until, team, model)
    finally:
        await conn.close()
    return report
